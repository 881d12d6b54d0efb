"""operators remember their card's cardholder UUID (learnt at PIV sign-in): one person, one operator

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30 22:40:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('operators', schema=None) as batch_op:
        batch_op.add_column(sa.Column('cardholder_uuid', sa.String(length=36), nullable=True))
        batch_op.create_index(batch_op.f('ix_operators_cardholder_uuid'), ['cardholder_uuid'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('operators', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_operators_cardholder_uuid'))
        batch_op.drop_column('cardholder_uuid')
