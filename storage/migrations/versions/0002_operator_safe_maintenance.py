"""operator-safe maintenance: pins, rollback kind, batch exclusion and quality, evaluation set, run owner

Revision ID: 0002
Revises: 0001
"""
import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('aliases') as batch:
        batch.add_column(sa.Column('pinned_at', sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column('pinned_by', sa.String(length=200), nullable=True))
        batch.add_column(sa.Column('pinned_reason', sa.Text(), nullable=True))
    with op.batch_alter_table('alias_history') as batch:
        batch.add_column(sa.Column('kind', sa.String(length=20), nullable=False, server_default='promote'))
    with op.batch_alter_table('batches') as batch:
        batch.add_column(sa.Column('excluded_at', sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column('excluded_by', sa.String(length=200), nullable=True))
        batch.add_column(sa.Column('excluded_reason', sa.Text(), nullable=True))
        batch.add_column(sa.Column('quality', sa.JSON(), nullable=True))
    with op.batch_alter_table('training_runs') as batch:
        batch.add_column(sa.Column('owner', sa.String(length=200), nullable=True))
    op.create_table(
        'evaluation_items',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('collection_id', sa.Integer(), nullable=False),
        sa.Column('item_id', sa.String(length=500), nullable=False),
        sa.Column('label', sa.String(length=500), nullable=False),
        sa.Column('added_batch', sa.Integer(), nullable=False),
        sa.Column('revision', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['collection_id'], ['collections.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('collection_id', 'item_id', name='uq_evaluation_item'),
    )
    op.create_index(op.f('ix_evaluation_items_collection_id'), 'evaluation_items', ['collection_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_evaluation_items_collection_id'), table_name='evaluation_items')
    op.drop_table('evaluation_items')
    with op.batch_alter_table('training_runs') as batch:
        batch.drop_column('owner')
    with op.batch_alter_table('batches') as batch:
        for name in ('quality', 'excluded_reason', 'excluded_by', 'excluded_at'):
            batch.drop_column(name)
    with op.batch_alter_table('alias_history') as batch:
        batch.drop_column('kind')
    with op.batch_alter_table('aliases') as batch:
        for name in ('pinned_reason', 'pinned_by', 'pinned_at'):
            batch.drop_column(name)
