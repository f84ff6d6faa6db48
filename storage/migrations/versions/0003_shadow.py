"""shadow A/B records: mirrored search requests compared between production and a shadow version

Revision ID: 0003
Revises: 0002
"""
import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'shadow_records',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('collection_id', sa.Integer(), nullable=False),
        sa.Column('production_model', sa.Integer(), nullable=False),
        sa.Column('production_index', sa.Integer(), nullable=False),
        sa.Column('shadow_model', sa.Integer(), nullable=False),
        sa.Column('shadow_index', sa.Integer(), nullable=False),
        sa.Column('k', sa.Integer(), nullable=False),
        sa.Column('queries', sa.Integer(), nullable=False),
        sa.Column('overlap_sum', sa.Float(), nullable=False),
        sa.Column('labelled', sa.Integer(), nullable=False),
        sa.Column('production_hits', sa.Integer(), nullable=False),
        sa.Column('shadow_hits', sa.Integer(), nullable=False),
        sa.Column('production_ms', sa.Float(), nullable=False),
        sa.Column('shadow_ms', sa.Float(), nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['collection_id'], ['collections.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index(op.f('ix_shadow_records_collection_id'), 'shadow_records', ['collection_id'], unique=False)
    op.create_index(op.f('ix_shadow_records_shadow_model'), 'shadow_records', ['shadow_model'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_shadow_records_shadow_model'), table_name='shadow_records')
    op.drop_index(op.f('ix_shadow_records_collection_id'), table_name='shadow_records')
    op.drop_table('shadow_records')
