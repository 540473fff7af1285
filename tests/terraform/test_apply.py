"""Every module's example and bootstrap applied to the patched moto with the real AWS provider, then
`plan -detailed-exitcode` (exit 0: what was applied is what the code says, no drift), then destroyed (issue 25,
section 4); and no API token is ever in a state (section 1). The runs are conftest.lifecycles'."""

from __future__ import annotations

import json

import pytest

from tests.terraform.applied import APPLIED_ROOTS, EMAIL_INGEST_EXAMPLE, SECRET_EXAMPLE, Lifecycle
from tests.terraform.real_provider import Run

pytestmark = [pytest.mark.tools, pytest.mark.integration, pytest.mark.timeout(1500)]


def test_bootstrap_and_the_ten_module_examples() -> None:
    assert len(APPLIED_ROOTS) == 11, APPLIED_ROOTS
    assert "bootstrap" in APPLIED_ROOTS and EMAIL_INGEST_EXAMPLE in APPLIED_ROOTS


@pytest.mark.parametrize("root", APPLIED_ROOTS)
def test_apply(root: str, lifecycles: dict[str, Lifecycle]) -> None:
    lifecycle = lifecycles[root]
    assert lifecycle.apply is not None and lifecycle.apply.returncode == 0, lifecycle.describe()
    assert json.loads(lifecycle.state_after_apply)["resources"], "nothing was applied"


@pytest.mark.parametrize("root", APPLIED_ROOTS)
def test_plan_after_apply_shows_no_changes(root: str, lifecycles: dict[str, Lifecycle]) -> None:
    lifecycle = lifecycles[root]
    assert lifecycle.plan is not None, f"no plan: the apply failed\n{lifecycle.describe()}"
    # -detailed-exitcode: 0 no changes, 2 changes (drift, or a value the provider reads back differently), 1 error.
    assert lifecycle.plan.returncode == 0, lifecycle.plan.describe()
    assert "No changes." in lifecycle.plan.stdout, lifecycle.plan.stdout


@pytest.mark.parametrize("root", APPLIED_ROOTS)
def test_destroy_leaves_nothing(root: str, lifecycles: dict[str, Lifecycle]) -> None:
    lifecycle = lifecycles[root]
    assert lifecycle.destroy is not None, f"no destroy: an earlier step failed\n{lifecycle.describe()}"
    assert lifecycle.destroy.returncode == 0, lifecycle.destroy.describe()
    assert lifecycle.state_after_destroy.get("resources") == [], lifecycle.state_after_destroy


@pytest.mark.parametrize(("root", "expected"), [(SECRET_EXAMPLE, 3), (EMAIL_INGEST_EXAMPLE, 2)])
def test_no_token_is_in_the_state_or_the_output(root: str, expected: int, lifecycles: dict[str, Lifecycle]) -> None:
    """The tokens in SSM (the secret example: the API's and two clients') were written through value_wo from the
    provider's ephemeral password: none is in terraform.tfstate, nor in what apply or plan printed."""
    lifecycle = lifecycles[root]
    assert lifecycle.apply is not None and lifecycle.apply.returncode == 0, lifecycle.describe()
    assert len(lifecycle.tokens) >= expected, lifecycle.tokens.keys()
    printed = lifecycle.state_after_apply + lifecycle.apply.stdout + (lifecycle.plan.stdout if lifecycle.plan else "")
    for name, value in lifecycle.tokens.items():
        assert len(value) >= 32, f"{name}: a {len(value)}-character token"
        assert value not in printed, f"the value of {name} is in the state or the output"


def test_every_plan_calls_get_random_password(lifecycles: dict[str, Lifecycle]) -> None:
    """Terraform opens the ephemeral passwords on a plan too, also with nothing to change: whoever plans (CI's
    read-only plan role included) needs secretsmanager:GetRandomPassword (terraform/README.md)."""
    lifecycle = lifecycles[SECRET_EXAMPLE]
    run: Run = lifecycle.while_applied
    assert run is not None, lifecycle.while_applied_error or lifecycle.describe()
    assert run.returncode == 1, run.describe()
    assert "GetRandomPassword" in run.stderr and "aws_secretsmanager_random_password" in run.stderr, run.stderr
