"""Registers `jokes` v1 for README's env_manager transcript: a model that needs pyjokes
0.6.0, which the bot's runtime lacks. Run as `python -m tests.readme.jokes` with
`CHATOPS_STATE_DIR` set: it logs into that state directory's embedded registry."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import mlflow.pyfunc


class Jokes(mlflow.pyfunc.PythonModel):  # type: ignore[misc]
    def predict(self, context: object, model_input: object) -> list[str]:
        import pyjokes  # type: ignore[import-not-found]  # only the model's own environment has it

        return [pyjokes.__version__]


def main() -> None:
    state = Path(os.environ["CHATOPS_STATE_DIR"]).absolute()
    state.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(f"sqlite:///{state / 'mlflow.db'}")
    with mlflow.start_run(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlflow.pyfunc.log_model(
            name="model",
            python_model=Jokes(),
            code_paths=[__file__],
            registered_model_name="jokes",
            pip_requirements=["pyjokes==0.6.0"],
        )


if __name__ == "__main__":
    main()
