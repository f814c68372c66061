"""The demo model `iris`: two scikit-learn versions, so a new registry has something to deploy."""

from __future__ import annotations

import warnings
from pathlib import Path

from core.scrub import scrubbed_output

DEMO_MODEL = "iris"
DEMO_EXPERIMENT = "iris-demo"
EVALUATION_TABLE = "evaluation.json"


def create_demo_model(*, tracking_uri: str, artifact_root: Path) -> list[int]:
    """Train and register `iris` v1 (logistic regression) and v2 (scaled logistic regression),
    each run with its held-out rows as its evaluation dataset; alias `champion` points at v2.
    Returns the version numbers created. What MLflow prints on the way (its run and
    experiment links name the tracking URI) is scrubbed."""
    with scrubbed_output():
        return _create(tracking_uri=tracking_uri, artifact_root=artifact_root)


def _create(*, tracking_uri: str, artifact_root: Path) -> list[int]:
    import mlflow
    import mlflow.sklearn
    import sklearn
    from mlflow.data.pandas_dataset import from_pandas
    from mlflow.models import infer_signature
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_experiment_by_name(DEMO_EXPERIMENT)
    experiment_id = (
        experiment.experiment_id
        if experiment
        else client.create_experiment(
            DEMO_EXPERIMENT, artifact_location=artifact_root.absolute().as_uri()
        )
    )
    x, y = load_iris(return_X_y=True, as_frame=True)
    x = x.astype("float64")
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.3, random_state=7)
    held_out = x_test.assign(species=y_test)
    candidates = [
        ("logistic-regression", LogisticRegression(C=0.02, max_iter=300)),
        ("scaled-logistic-regression", make_pipeline(StandardScaler(), LogisticRegression())),
    ]
    mlflow.set_tracking_uri(tracking_uri)
    versions = []
    for name, estimator in candidates:
        estimator.fit(x_train, y_train)
        with (
            mlflow.start_run(experiment_id=experiment_id, run_name=name),
            warnings.catch_warnings(),
        ):
            warnings.simplefilter("ignore")
            mlflow.log_param("estimator", name)
            mlflow.log_metric("accuracy", float(estimator.score(x_test, y_test)))
            # the held-out rows, logged as the run's evaluation dataset: the prediction diff
            # scores a new version beside the serving one on them
            mlflow.log_table(held_out, EVALUATION_TABLE)
            mlflow.log_input(
                from_pandas(
                    held_out,
                    source=mlflow.get_artifact_uri(EVALUATION_TABLE),
                    name="iris-test",
                    targets="species",
                ),
                context="evaluation",
            )
            info = mlflow.sklearn.log_model(
                estimator,
                name="model",
                signature=infer_signature(x_train, estimator.predict(x_train)),
                input_example=x_train.head(3),
                registered_model_name=DEMO_MODEL,
                # naming the requirement skips MLflow's slow inference of it
                pip_requirements=[f"scikit-learn=={sklearn.__version__}"],
            )
        versions.append(int(info.registered_model_version))
    client.set_registered_model_alias(DEMO_MODEL, "champion", str(versions[-1]))
    return versions
