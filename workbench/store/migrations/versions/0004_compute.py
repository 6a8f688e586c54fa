"""Compute Factory tables: allocations of pool slots and node samples.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('compute_allocations',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.Column('pool', sa.String(length=60), nullable=False),
    sa.Column('gpu_type', sa.String(length=60), nullable=True),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.Column('duration_s', sa.Float(), nullable=False),
    sa.Column('priority', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('dagster_run_id', sa.String(length=80), nullable=True),
    sa.Column('owner', sa.JSON(), nullable=False),
    sa.Column('detail', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_compute_allocations_pool'), 'compute_allocations', ['pool'], unique=False)
    op.create_index(op.f('ix_compute_allocations_status'), 'compute_allocations', ['status'], unique=False)
    op.create_index(op.f('ix_compute_allocations_tenant_id'), 'compute_allocations', ['tenant_id'], unique=False)
    op.create_table('compute_node_samples',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('node', sa.String(length=200), nullable=False),
    sa.Column('ts', sa.DateTime(timezone=True), nullable=False),
    sa.Column('cpu_percent', sa.Float(), nullable=True),
    sa.Column('cpu_count', sa.Integer(), nullable=True),
    sa.Column('load_1m', sa.Float(), nullable=True),
    sa.Column('memory_percent', sa.Float(), nullable=True),
    sa.Column('memory_used_mb', sa.Float(), nullable=True),
    sa.Column('memory_total_mb', sa.Float(), nullable=True),
    sa.Column('gpu_count', sa.Integer(), nullable=True),
    sa.Column('gpu_utilization', sa.Float(), nullable=True),
    sa.Column('gpu_memory_percent', sa.Float(), nullable=True),
    sa.Column('gpus', sa.JSON(), nullable=True),
    sa.Column('preempted', sa.Boolean(), nullable=False),
    sa.Column('preemption', sa.JSON(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_compute_node_samples_node'), 'compute_node_samples', ['node'], unique=False)
    op.create_index(op.f('ix_compute_node_samples_ts'), 'compute_node_samples', ['ts'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_compute_node_samples_ts'), table_name='compute_node_samples')
    op.drop_index(op.f('ix_compute_node_samples_node'), table_name='compute_node_samples')
    op.drop_table('compute_node_samples')
    op.drop_index(op.f('ix_compute_allocations_tenant_id'), table_name='compute_allocations')
    op.drop_index(op.f('ix_compute_allocations_status'), table_name='compute_allocations')
    op.drop_index(op.f('ix_compute_allocations_pool'), table_name='compute_allocations')
    op.drop_table('compute_allocations')
