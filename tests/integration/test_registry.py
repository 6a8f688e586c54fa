"""Model registry: checkpoints with lineage, the promotion gate, rollback; migrations match the models."""

from __future__ import annotations

import pytest

from workbench.client import EmbeddedClient
from workbench.errors import ConflictError
from workbench.evals.reports import save_report
from workbench.train.registry import (
    PromotionRefused,
    get_model,
    list_checkpoints,
    promote,
    register_checkpoint,
    register_model,
    rollback,
)

pytestmark = pytest.mark.integration


def _report(services, tenant, checkpoint_id, rate):
    return save_report(services, tenant, subject=checkpoint_id, suite="calculator", split="test", request={},
                       summary={"success_rate": rate}, results=[{"task": "t1", "passed": rate > 0.5}])


def test_promotion_gate_and_rollback(services):
    tenant = EmbeddedClient(services, "registry").tenant_id
    base = register_model(services, tenant, "base", "base")
    policy = register_model(services, tenant, "calc-policy", "policy", base_model_id=base.id)
    with pytest.raises(ConflictError):
        register_model(services, tenant, "calc-policy", "policy")
    lineage = {"base_model": base.id, "dataset_id": "ds_1", "job_id": "job_1", "hyperparams": {"lr": 1e-4}, "code_version": "abc"}
    v1 = register_checkpoint(services, tenant, policy.id, uri="/ckpt/1", format="lora", base_uri="/base", lineage=lineage)
    v2 = register_checkpoint(services, tenant, "calc-policy", uri="/ckpt/2", format="lora", base_uri="/base", lineage=lineage)
    assert (v1.version, v2.version) == (1, 2)
    assert [c.version for c in list_checkpoints(services, tenant, policy.id)] == [2, 1]

    with pytest.raises(PromotionRefused, match="no finished eval report"):
        promote(services, tenant, policy.id, v1.id, "production", actor="k")
    _report(services, tenant, v1.id, 0.6)
    promote(services, tenant, policy.id, v1.id, "production", actor="k")
    assert get_model(services, tenant, policy.id).production_checkpoint_id == v1.id

    _report(services, tenant, v2.id, 0.4)
    with pytest.raises(PromotionRefused, match="below production"):
        promote(services, tenant, policy.id, v2.id, "production", actor="k")
    with pytest.raises(PromotionRefused, match="only admins"):
        promote(services, tenant, policy.id, v2.id, "production", actor="k", override=True)
    done = promote(services, tenant, policy.id, v2.id, "production", actor="admin", may_override=True, override=True,
                   reason="hotfix")
    assert done["previous_production"] == v1.id and done["override"]

    back = rollback(services, tenant, policy.id, actor="admin")
    assert back["checkpoint_id"] == v1.id
    assert get_model(services, tenant, policy.id).production_checkpoint_id == v1.id
    stages = {c.id: c.stage for c in list_checkpoints(services, tenant, policy.id)}
    assert stages == {v1.id: "production", v2.id: "archived"}


def test_migrations_match_the_table_definitions(services):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from workbench.store.models import Base

    with services.control.engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diff == []
