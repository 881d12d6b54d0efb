"""operators remember their PIV card's FASC-N and UUID (an applicant is never their own operator)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 18:40:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('operators', schema=None) as batch_op:
        batch_op.add_column(sa.Column('card_fascn', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('card_uuid', sa.String(length=36), nullable=True))
        batch_op.create_index(batch_op.f('ix_operators_card_fascn'), ['card_fascn'], unique=False)
        batch_op.create_index(batch_op.f('ix_operators_card_uuid'), ['card_uuid'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('operators', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_operators_card_uuid'))
        batch_op.drop_index(batch_op.f('ix_operators_card_fascn'))
        batch_op.drop_column('card_uuid')
        batch_op.drop_column('card_fascn')
