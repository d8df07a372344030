"""Initial schema: studies, methods, items, item_maps, raters, assignments, votes.

Revision ID: 0001
Revises: 
Create Date: 2026-11-27
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('studies',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('question', sa.Text(), nullable=False),
    sa.Column('instructions', sa.Text(), nullable=False),
    sa.Column('consent', sa.Text(), nullable=True),
    sa.Column('allow_no_preference', sa.Boolean(), nullable=False),
    sa.Column('is_open', sa.Boolean(), nullable=False),
    sa.Column('invite_only', sa.Boolean(), nullable=False),
    sa.Column('repeats', sa.Integer(), nullable=False),
    sa.Column('completion_code', sa.String(length=32), nullable=False),
    sa.Column('completion_redirect', sa.Text(), nullable=True),
    sa.Column('seed', sa.BigInteger(), nullable=False),
    sa.Column('n_raters', sa.Integer(), nullable=False),
    sa.Column('package_root', sa.Text(), nullable=False),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('manifest_json', sa.Text(), nullable=False),
    sa.Column('imported_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('n_raters >= 0', name=op.f('ck_studies_n_raters_non_negative')),
    sa.CheckConstraint('repeats >= 0', name=op.f('ck_studies_repeats_non_negative')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_studies')),
    sa.UniqueConstraint('name', name=op.f('uq_studies_name'))
    )
    op.create_table('methods',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('study_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=True),
    sa.Column('ordinal', sa.Integer(), nullable=False),
    sa.CheckConstraint("role IN ('proposed', 'baseline')", name=op.f('ck_methods_role_known')),
    sa.ForeignKeyConstraint(['study_id'], ['studies.id'], name=op.f('fk_methods_study_id_studies'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_methods')),
    sa.UniqueConstraint('study_id', 'id', name=op.f('uq_methods_study_id_id')),
    sa.UniqueConstraint('study_id', 'name', name=op.f('uq_methods_study_id_name')),
    sa.UniqueConstraint('study_id', 'role', name=op.f('uq_methods_study_id_role'))
    )
    op.create_table('raters',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('study_id', sa.Integer(), nullable=False),
    sa.Column('external_id', sa.String(length=200), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('seed', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint('length(external_id) BETWEEN 1 AND 200', name=op.f('ck_raters_external_id_length')),
    sa.CheckConstraint('seq >= 0', name=op.f('ck_raters_seq_non_negative')),
    sa.ForeignKeyConstraint(['study_id'], ['studies.id'], name=op.f('fk_raters_study_id_studies'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_raters')),
    sa.UniqueConstraint('study_id', 'external_id', name=op.f('uq_raters_study_id_external_id')),
    sa.UniqueConstraint('study_id', 'seq', name=op.f('uq_raters_study_id_seq'))
    )
    op.create_table('items',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('study_id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=128), nullable=False),
    sa.Column('ordinal', sa.Integer(), nullable=False),
    sa.Column('label', sa.Text(), nullable=False),
    sa.Column('image_path', sa.Text(), nullable=False),
    sa.Column('mask_path', sa.Text(), nullable=True),
    sa.Column('is_attention_check', sa.Boolean(), nullable=False),
    sa.Column('expected_method_id', sa.Integer(), nullable=True),
    sa.CheckConstraint('is_attention_check = (expected_method_id IS NOT NULL)', name=op.f('ck_items_expected_iff_check')),
    sa.ForeignKeyConstraint(['study_id', 'expected_method_id'], ['methods.study_id', 'methods.id'], name='fk_items_expected_method'),
    sa.ForeignKeyConstraint(['study_id'], ['studies.id'], name=op.f('fk_items_study_id_studies'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_items')),
    sa.UniqueConstraint('study_id', 'key', name=op.f('uq_items_study_id_key')),
    sa.UniqueConstraint('study_id', 'ordinal', name=op.f('uq_items_study_id_ordinal'))
    )
    op.create_table('assignments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('rater_id', sa.Integer(), nullable=False),
    sa.Column('item_id', sa.Integer(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('left_method_id', sa.Integer(), nullable=False),
    sa.Column('right_method_id', sa.Integer(), nullable=False),
    sa.Column('is_repeat', sa.Boolean(), nullable=False),
    sa.Column('token', sa.String(length=32), nullable=False),
    sa.Column('shown_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint('left_method_id <> right_method_id', name=op.f('ck_assignments_two_methods')),
    sa.CheckConstraint('position >= 1', name=op.f('ck_assignments_position_positive')),
    sa.ForeignKeyConstraint(['item_id'], ['items.id'], name=op.f('fk_assignments_item_id_items'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['left_method_id'], ['methods.id'], name=op.f('fk_assignments_left_method_id_methods')),
    sa.ForeignKeyConstraint(['rater_id'], ['raters.id'], name=op.f('fk_assignments_rater_id_raters'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['right_method_id'], ['methods.id'], name=op.f('fk_assignments_right_method_id_methods')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_assignments')),
    sa.UniqueConstraint('id', 'rater_id', 'item_id', 'is_repeat', name='uq_assignments_vote_key'),
    sa.UniqueConstraint('rater_id', 'item_id', 'is_repeat', name=op.f('uq_assignments_rater_id_item_id_is_repeat')),
    sa.UniqueConstraint('rater_id', 'position', name=op.f('uq_assignments_rater_id_position')),
    sa.UniqueConstraint('token', name=op.f('uq_assignments_token'))
    )
    op.create_table('item_maps',
    sa.Column('item_id', sa.Integer(), nullable=False),
    sa.Column('method_id', sa.Integer(), nullable=False),
    sa.Column('path', sa.Text(), nullable=False),
    sa.Column('heatmap_path', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['item_id'], ['items.id'], name=op.f('fk_item_maps_item_id_items'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['method_id'], ['methods.id'], name=op.f('fk_item_maps_method_id_methods'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('item_id', 'method_id', name=op.f('pk_item_maps'))
    )
    op.create_table('votes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('assignment_id', sa.Integer(), nullable=False),
    sa.Column('rater_id', sa.Integer(), nullable=False),
    sa.Column('item_id', sa.Integer(), nullable=False),
    sa.Column('is_repeat', sa.Boolean(), nullable=False),
    sa.Column('chosen_method_id', sa.Integer(), nullable=True),
    sa.Column('chosen_side', sa.String(length=5), nullable=False),
    sa.Column('response_ms', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("(chosen_side = 'none') = (chosen_method_id IS NULL)", name=op.f('ck_votes_method_iff_side')),
    sa.CheckConstraint("chosen_side IN ('left', 'right', 'none')", name=op.f('ck_votes_side_known')),
    sa.CheckConstraint('response_ms >= 0', name=op.f('ck_votes_response_ms_non_negative')),
    sa.ForeignKeyConstraint(['assignment_id', 'rater_id', 'item_id', 'is_repeat'], ['assignments.id', 'assignments.rater_id', 'assignments.item_id', 'assignments.is_repeat'], name='fk_votes_assignment'),
    sa.ForeignKeyConstraint(['item_id', 'chosen_method_id'], ['item_maps.item_id', 'item_maps.method_id'], name='fk_votes_chosen_map'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_votes')),
    sa.UniqueConstraint('assignment_id', name=op.f('uq_votes_assignment_id')),
    sa.UniqueConstraint('rater_id', 'item_id', 'is_repeat', name=op.f('uq_votes_rater_id_item_id_is_repeat'))
    )


def downgrade() -> None:
    op.drop_table('votes')
    op.drop_table('item_maps')
    op.drop_table('assignments')
    op.drop_table('items')
    op.drop_table('raters')
    op.drop_table('methods')
    op.drop_table('studies')
