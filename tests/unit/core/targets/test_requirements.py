"""A model's requirements against the distributions really installed in this runtime, and
where they are read from in models MLflow wrote or people wrote by hand."""

from __future__ import annotations

import importlib.metadata
import platform
import warnings
from pathlib import Path

import pytest
from packaging.version import Version

from core.targets.local.requirements import Requirements, missing_modules, read, unmet

SKLEARN = Version(importlib.metadata.version("scikit-learn"))
MLFLOW = Version(importlib.metadata.version("mlflow"))


def unmet_lines(*lines: str) -> list[str]:
    return [u.requirement for u in unmet(Requirements(lines))]


def test_an_exact_pin_is_met_by_another_patch_release_of_the_same_minor() -> None:
    major, minor = SKLEARN.release[:2]
    assert unmet_lines(f"scikit-learn=={major}.{minor}.{SKLEARN.micro + 7}") == []


def test_an_exact_pin_on_another_minor_release_is_unmet_and_says_what_is_installed() -> None:
    major, minor = SKLEARN.release[:2]
    wanted = f"scikit-learn=={major}.{minor + 1}.0"
    [problem] = unmet(Requirements((wanted,)))
    assert problem.describe() == (f"{wanted} — installed {SKLEARN}, which does not satisfy it")


def test_names_are_compared_as_pypi_normalises_them() -> None:
    assert unmet_lines(f"Scikit_Learn=={SKLEARN}", f"SCIKIT.learn>={SKLEARN}") == []


def test_mlflow_is_met_by_any_release_of_its_major_version_but_not_another_major() -> None:
    assert unmet_lines(f"mlflow=={MLFLOW.major}.0.1", f"mlflow-skinny=={MLFLOW.major}.0.1") == []
    assert unmet_lines(f"mlflow=={MLFLOW.major + 1}.0.0") == [f"mlflow=={MLFLOW.major + 1}.0.0"]


def test_ranges_apply_as_written_and_absent_packages_are_unmet() -> None:
    lines = (
        f"scikit-learn<{SKLEARN}",
        "a-package-nobody-installed==1.0",
        f"scikit-learn>={SKLEARN}",
    )
    problems = unmet(Requirements(lines))
    assert [(p.requirement, p.installed) for p in problems] == [
        (f"scikit-learn<{SKLEARN}", str(SKLEARN)),
        ("a-package-nobody-installed==1.0", ""),
    ]
    assert problems[1].describe() == "a-package-nobody-installed==1.0 — not installed"


def test_requirements_for_other_platforms_and_pip_options_name_nothing_to_compare() -> None:
    assert (
        unmet_lines(
            'a-windows-only-package==1.0; sys_platform == "win32"',
            "--index-url https://pypi.org/simple",
            "-c constraints.txt",
        )
        == []
    )


def test_a_model_mlflow_wrote_is_read_from_its_requirements_txt(tmp_path: Path) -> None:
    import mlflow.sklearn
    from sklearn.linear_model import LogisticRegression

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlflow.sklearn.save_model(
            LogisticRegression().fit([[0.0], [1.0]], [0, 1]),
            tmp_path / "m",
            pip_requirements=["scikit-learn", "a-package-nobody-installed==2.0"],
        )
    reqs = read(tmp_path / "m")

    assert reqs.source == "requirements.txt"
    assert "a-package-nobody-installed==2.0" in reqs.lines
    assert reqs.python == platform.python_version()
    assert unmet_lines(*reqs.lines) == ["a-package-nobody-installed==2.0"]


def test_without_requirements_txt_python_env_then_conda_pip_section_are_read(
    tmp_path: Path,
) -> None:
    (tmp_path / "python_env.yaml").write_text(
        "python: 3.11.4\ndependencies:\n- -r extra.txt\n- tinydb==3.0.0\n"
    )
    (tmp_path / "extra.txt").write_text("# pinned when logged\npyjokes==0.6.0\n")
    assert read(tmp_path) == Requirements(
        ("pyjokes==0.6.0", "tinydb==3.0.0"), "3.11.4", "python_env.yaml"
    )

    (tmp_path / "python_env.yaml").unlink()
    (tmp_path / "conda.yaml").write_text(
        "dependencies:\n- python=3.10\n- pip:\n  - pyjokes==0.6.0\n"
    )
    assert read(tmp_path) == Requirements(("pyjokes==0.6.0",), "", "conda.yaml")


def test_one_set_of_needs_has_one_digest_however_it_is_written() -> None:
    one = Requirements(("pyjokes==0.6.0", "mlflow==3.1"), "3.11.7")
    assert one.digest == Requirements(("mlflow==3.1", "PyJokes==0.6.0"), "3.11.7").digest
    assert one.digest != Requirements(("pyjokes==0.6.1", "mlflow==3.1"), "3.11.7").digest


@pytest.mark.parametrize(("shipped", "missing"), [(True, []), (False, ["custom_scorer"])])
def test_a_pickled_class_from_a_module_not_shipped_is_found_without_loading_it(
    tmp_path: Path, shipped: bool, missing: list[str]
) -> None:
    import sys

    import cloudpickle

    module = tmp_path / "src" / "custom_scorer.py"
    module.parent.mkdir()
    module.write_text("class Scorer:\n    def __init__(self):\n        self.weights = [1, 2]\n")
    sys.path.insert(0, str(module.parent))
    try:
        import custom_scorer

        data = cloudpickle.dumps({"model": custom_scorer.Scorer()})
    finally:
        sys.path.remove(str(module.parent))
        sys.modules.pop("custom_scorer", None)
    model = tmp_path / "model"
    (model / "data").mkdir(parents=True)
    (model / "data" / "python_model.pkl").write_bytes(data)
    if shipped:
        (model / "code").mkdir()
        (model / "code" / "custom_scorer.py").write_text(module.read_text())

    assert missing_modules(model) == missing


def test_a_model_logged_with_another_python_release_is_told_patch_releases_are_not() -> None:
    here = platform.python_version_tuple()
    assert Requirements((), "3.9.18").other_python == "3.9"
    assert Requirements((), f"{here[0]}.{here[1]}.99").other_python == ""
    assert Requirements((), "").other_python == ""  # it does not say: nothing to tell
    assert Requirements((), "three").other_python == ""
