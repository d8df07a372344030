"""The distinction task: studies.task and the distinction_* tables (items, candidates, raters, trials, answers).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30

Only adds: existing studies become ``task = 'pairwise'`` through the column default, and no pairwise
table is rebuilt. (On SQLite the column is added with a plain ALTER TABLE ... ADD COLUMN carrying its
CHECK, never by batch-copying ``studies``: dropping the old copy would cascade into every study.)
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

TASK_CHECK = "task IN ('pairwise', 'distinction')"


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("ALTER TABLE studies ADD COLUMN task VARCHAR(16) DEFAULT 'pairwise' NOT NULL "
                   f"CONSTRAINT ck_studies_task_known CHECK ({TASK_CHECK})")
    else:
        op.add_column('studies', sa.Column('task', sa.String(length=16), server_default='pairwise',
                                           nullable=False))
        op.create_check_constraint(op.f('ck_studies_task_known'), 'studies', TASK_CHECK)
    op.create_table('distinction_items',
    sa.Column('item_id', sa.Integer(), nullable=False),
    sa.Column('is_attention_check', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['item_id'], ['items.id'], name=op.f('fk_distinction_items_item_id_items'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('item_id', name=op.f('pk_distinction_items'))
    )
    op.create_table('distinction_candidates',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('item_id', sa.Integer(), nullable=False),
    sa.Column('method_id', sa.Integer(), nullable=False),
    sa.Column('ordinal', sa.Integer(), nullable=False),
    sa.Column('label', sa.Text(), nullable=False),
    sa.Column('path', sa.Text(), nullable=False),
    sa.Column('rank', sa.Integer(), nullable=False),
    sa.CheckConstraint('ordinal >= 0', name=op.f('ck_distinction_candidates_ordinal_non_negative')),
    sa.CheckConstraint('rank >= 1', name=op.f('ck_distinction_candidates_rank_positive')),
    sa.ForeignKeyConstraint(['item_id'], ['items.id'], name=op.f('fk_distinction_candidates_item_id_items'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['method_id'], ['methods.id'], name=op.f('fk_distinction_candidates_method_id_methods'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_distinction_candidates')),
    sa.UniqueConstraint('item_id', 'method_id', 'ordinal', name=op.f('uq_distinction_candidates_item_id_method_id_ordinal')),
    sa.UniqueConstraint('item_id', 'method_id', 'rank', name=op.f('uq_distinction_candidates_item_id_method_id_rank'))
    )
    op.create_table('distinction_raters',
    sa.Column('rater_id', sa.Integer(), nullable=False),
    sa.Column('method_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['method_id'], ['methods.id'], name=op.f('fk_distinction_raters_method_id_methods'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['rater_id'], ['raters.id'], name=op.f('fk_distinction_raters_rater_id_raters'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('rater_id', name=op.f('pk_distinction_raters')),
    sa.UniqueConstraint('rater_id', 'method_id', name=op.f('uq_distinction_raters_rater_id_method_id'))
    )
    op.create_table('distinction_trials',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('rater_id', sa.Integer(), nullable=False),
    sa.Column('item_id', sa.Integer(), nullable=False),
    sa.Column('method_id', sa.Integer(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('is_repeat', sa.Boolean(), nullable=False),
    sa.Column('candidate_order', sa.String(length=64), nullable=False),
    sa.Column('token', sa.String(length=32), nullable=False),
    sa.Column('shown_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint('position >= 1', name=op.f('ck_distinction_trials_position_positive')),
    sa.ForeignKeyConstraint(['item_id'], ['items.id'], name=op.f('fk_distinction_trials_item_id_items'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['rater_id', 'method_id'], ['distinction_raters.rater_id', 'distinction_raters.method_id'], name='fk_distinction_trials_rater_method', ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['rater_id'], ['raters.id'], name=op.f('fk_distinction_trials_rater_id_raters'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_distinction_trials')),
    sa.UniqueConstraint('id', 'rater_id', 'item_id', 'is_repeat', 'method_id', name='uq_distinction_trials_answer_key'),
    sa.UniqueConstraint('rater_id', 'item_id', 'is_repeat', name=op.f('uq_distinction_trials_rater_id_item_id_is_repeat')),
    sa.UniqueConstraint('rater_id', 'position', name=op.f('uq_distinction_trials_rater_id_position')),
    sa.UniqueConstraint('token', name=op.f('uq_distinction_trials_token'))
    )
    op.create_table('distinction_answers',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('trial_id', sa.Integer(), nullable=False),
    sa.Column('rater_id', sa.Integer(), nullable=False),
    sa.Column('item_id', sa.Integer(), nullable=False),
    sa.Column('is_repeat', sa.Boolean(), nullable=False),
    sa.Column('method_id', sa.Integer(), nullable=False),
    sa.Column('chosen_ordinal', sa.Integer(), nullable=False),
    sa.Column('chosen_slot', sa.Integer(), nullable=False),
    sa.Column('confidence', sa.Integer(), nullable=False),
    sa.Column('response_ms', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('chosen_slot >= 0', name=op.f('ck_distinction_answers_chosen_slot_non_negative')),
    sa.CheckConstraint('confidence BETWEEN 1 AND 5', name=op.f('ck_distinction_answers_confidence_range')),
    sa.CheckConstraint('response_ms >= 0', name=op.f('ck_distinction_answers_response_ms_non_negative')),
    sa.ForeignKeyConstraint(['item_id', 'method_id', 'chosen_ordinal'], ['distinction_candidates.item_id', 'distinction_candidates.method_id', 'distinction_candidates.ordinal'], name='fk_distinction_answers_chosen'),
    sa.ForeignKeyConstraint(['trial_id', 'rater_id', 'item_id', 'is_repeat', 'method_id'], ['distinction_trials.id', 'distinction_trials.rater_id', 'distinction_trials.item_id', 'distinction_trials.is_repeat', 'distinction_trials.method_id'], name='fk_distinction_answers_trial'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_distinction_answers')),
    sa.UniqueConstraint('rater_id', 'item_id', 'is_repeat', name=op.f('uq_distinction_answers_rater_id_item_id_is_repeat')),
    sa.UniqueConstraint('trial_id', name=op.f('uq_distinction_answers_trial_id'))
    )


def downgrade() -> None:
    op.drop_table('distinction_answers')
    op.drop_table('distinction_trials')
    op.drop_table('distinction_raters')
    op.drop_table('distinction_candidates')
    op.drop_table('distinction_items')
    if op.get_bind().dialect.name == "sqlite":
        op.execute("ALTER TABLE studies DROP COLUMN task")  # SQLite >= 3.35; no table copy
    else:
        op.drop_constraint(op.f('ck_studies_task_known'), 'studies', type_='check')
        op.drop_column('studies', 'task')
