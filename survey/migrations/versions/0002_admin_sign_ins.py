"""Admin sign-in log and lockout state: admin_sign_ins.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('admin_sign_ins',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('client_address', sa.String(length=64), nullable=True),
    sa.Column('outcome', sa.String(length=7), nullable=False),
    sa.CheckConstraint("outcome IN ('success', 'failure', 'locked', 'reset')", name=op.f('ck_admin_sign_ins_outcome_known')),
    sa.CheckConstraint('client_address IS NULL OR length(client_address) BETWEEN 1 AND 64', name=op.f('ck_admin_sign_ins_client_address_length')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_admin_sign_ins'))
    )
    op.create_index(op.f('ix_admin_sign_ins_outcome_client_address_id'), 'admin_sign_ins',
                    ['outcome', 'client_address', 'id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_admin_sign_ins_outcome_client_address_id'), table_name='admin_sign_ins')
    op.drop_table('admin_sign_ins')
