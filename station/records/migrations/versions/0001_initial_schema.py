"""initial schema: operators, applicants, PIV Auth certificates, requests, credentials, CRLs, audit

Revision ID: 0001
Revises: 
Create Date: 2026-11-27 17:22:41.966817
"""
from alembic import op
import sqlalchemy as sa


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('applicants',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('cardholder_uuid', sa.String(length=36), nullable=True),
    sa.Column('fascn', sa.String(length=64), nullable=True),
    sa.Column('card_uuid', sa.String(length=36), nullable=True),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_applicants'))
    )
    with op.batch_alter_table('applicants', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_applicants_cardholder_uuid'), ['cardholder_uuid'], unique=False)
        batch_op.create_index(batch_op.f('ix_applicants_fascn'), ['fascn'], unique=False)

    op.create_table('audit_events',
    sa.Column('seq', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('occurred_at', sa.String(length=32), nullable=False),
    sa.Column('actor', sa.String(length=255), nullable=False),
    sa.Column('action', sa.String(length=64), nullable=False),
    sa.Column('object_type', sa.String(length=32), nullable=False),
    sa.Column('object_id', sa.String(length=64), nullable=False),
    sa.Column('details', sa.Text(), nullable=False),
    sa.Column('prev_hash', sa.String(length=64), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('seq', name=op.f('pk_audit_events')),
    sa.UniqueConstraint('hash', name=op.f('uq_audit_events_hash'))
    )
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_events_action'), ['action'], unique=False)

    audit_head = op.create_table('audit_head',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_head'))
    )
    # the chain starts from a genesis head: seq 0, all-zero hash (station.audit.chain.GENESIS)
    op.bulk_insert(audit_head, [{'id': 1, 'seq': 0, 'hash': '0' * 64}])
    op.create_table('audit_keys',
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('station_id', sa.String(length=36), nullable=False),
    sa.Column('public_key_pem', sa.Text(), nullable=False),
    sa.Column('registered_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('fingerprint', name=op.f('pk_audit_keys'))
    )
    op.create_table('crls',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('issuer_key_id', sa.String(length=64), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('this_update', sa.DateTime(), nullable=False),
    sa.Column('next_update', sa.DateTime(), nullable=False),
    sa.Column('entries', sa.Integer(), nullable=False),
    sa.Column('der', sa.LargeBinary(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_crls')),
    sa.UniqueConstraint('issuer_key_id', 'number', name=op.f('uq_crls_issuer_key_id'))
    )
    op.create_table('operators',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('identity', sa.String(length=255), nullable=False),
    sa.Column('display_name', sa.String(length=255), nullable=False),
    sa.Column('roles', sa.String(length=255), nullable=False),
    sa.Column('auth_method', sa.String(length=16), nullable=False),
    sa.Column('auth_reference', sa.String(length=255), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_operators')),
    sa.UniqueConstraint('identity', name=op.f('uq_operators_identity'))
    )
    op.create_table('audit_checkpoints',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('head_hash', sa.String(length=64), nullable=False),
    sa.Column('signed_at', sa.String(length=32), nullable=False),
    sa.Column('key_fingerprint', sa.String(length=64), nullable=False),
    sa.Column('signature', sa.LargeBinary(), nullable=False),
    sa.ForeignKeyConstraint(['key_fingerprint'], ['audit_keys.fingerprint'], name=op.f('fk_audit_checkpoints_key_fingerprint_audit_keys')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_checkpoints'))
    )
    with op.batch_alter_table('audit_checkpoints', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_checkpoints_seq'), ['seq'], unique=False)

    op.create_table('piv_auth_certificates',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('applicant_id', sa.Integer(), nullable=False),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('serial', sa.String(length=64), nullable=False),
    sa.Column('issuer', sa.Text(), nullable=False),
    sa.Column('subject', sa.Text(), nullable=False),
    sa.Column('not_after', sa.DateTime(), nullable=False),
    sa.Column('der', sa.LargeBinary(), nullable=False),
    sa.Column('first_seen', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['applicant_id'], ['applicants.id'], name=op.f('fk_piv_auth_certificates_applicant_id_applicants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_piv_auth_certificates')),
    sa.UniqueConstraint('fingerprint', name=op.f('uq_piv_auth_certificates_fingerprint'))
    )
    with op.batch_alter_table('piv_auth_certificates', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_piv_auth_certificates_applicant_id'), ['applicant_id'], unique=False)

    op.create_table('requests',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('applicant_id', sa.Integer(), nullable=False),
    sa.Column('piv_auth_certificate_id', sa.Integer(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('aal', sa.String(length=8), nullable=False),
    sa.Column('target_kind', sa.String(length=32), nullable=False),
    sa.Column('target_uri', sa.String(length=512), nullable=True),
    sa.Column('target_state', sa.Text(), nullable=True),
    sa.Column('registrar_id', sa.Integer(), nullable=False),
    sa.Column('approver_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('decided_at', sa.DateTime(), nullable=True),
    sa.Column('issued_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['applicant_id'], ['applicants.id'], name=op.f('fk_requests_applicant_id_applicants')),
    sa.ForeignKeyConstraint(['approver_id'], ['operators.id'], name=op.f('fk_requests_approver_id_operators')),
    sa.ForeignKeyConstraint(['piv_auth_certificate_id'], ['piv_auth_certificates.id'], name=op.f('fk_requests_piv_auth_certificate_id_piv_auth_certificates')),
    sa.ForeignKeyConstraint(['registrar_id'], ['operators.id'], name=op.f('fk_requests_registrar_id_operators')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_requests'))
    )
    with op.batch_alter_table('requests', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_requests_applicant_id'), ['applicant_id'], unique=False)

    op.create_table('credentials',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('request_id', sa.Integer(), nullable=False),
    sa.Column('serial', sa.String(length=64), nullable=False),
    sa.Column('issuer_key_id', sa.String(length=64), nullable=False),
    sa.Column('certificate', sa.LargeBinary(), nullable=False),
    sa.Column('policy', sa.String(length=64), nullable=False),
    sa.Column('subject', sa.Text(), nullable=False),
    sa.Column('san_uuid', sa.String(length=36), nullable=False),
    sa.Column('public_key_sha256', sa.String(length=64), nullable=False),
    sa.Column('target_device', sa.String(length=255), nullable=True),
    sa.Column('piv_auth_certificate_id', sa.Integer(), nullable=False),
    sa.Column('not_before', sa.DateTime(), nullable=False),
    sa.Column('not_after', sa.DateTime(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('revocation_reason', sa.String(length=32), nullable=True),
    sa.Column('revoked_at', sa.DateTime(), nullable=True),
    sa.Column('issued_at', sa.DateTime(), nullable=False),
    sa.Column('piv_auth_rechecked_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['piv_auth_certificate_id'], ['piv_auth_certificates.id'], name=op.f('fk_credentials_piv_auth_certificate_id_piv_auth_certificates')),
    sa.ForeignKeyConstraint(['request_id'], ['requests.id'], name=op.f('fk_credentials_request_id_requests')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_credentials')),
    sa.UniqueConstraint('request_id', name=op.f('uq_credentials_request_id')),
    sa.UniqueConstraint('san_uuid', name=op.f('uq_credentials_san_uuid')),
    sa.UniqueConstraint('serial', name=op.f('uq_credentials_serial'))
    )
    with op.batch_alter_table('credentials', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_credentials_issuer_key_id'), ['issuer_key_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_credentials_piv_auth_certificate_id'), ['piv_auth_certificate_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('credentials', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_credentials_piv_auth_certificate_id'))
        batch_op.drop_index(batch_op.f('ix_credentials_issuer_key_id'))

    op.drop_table('credentials')
    with op.batch_alter_table('requests', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_requests_applicant_id'))

    op.drop_table('requests')
    with op.batch_alter_table('piv_auth_certificates', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_piv_auth_certificates_applicant_id'))

    op.drop_table('piv_auth_certificates')
    with op.batch_alter_table('audit_checkpoints', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_checkpoints_seq'))

    op.drop_table('audit_checkpoints')
    op.drop_table('operators')
    op.drop_table('crls')
    op.drop_table('audit_keys')
    op.drop_table('audit_head')
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_events_action'))

    op.drop_table('audit_events')
    with op.batch_alter_table('applicants', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_applicants_fascn'))
        batch_op.drop_index(batch_op.f('ix_applicants_cardholder_uuid'))

    op.drop_table('applicants')
