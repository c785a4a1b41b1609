"""The v2-drive flows again, on a node whose metadata is in PostgreSQL
(the raw-SQL units of storage/drive.py run on both backends)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.harness import prepare_node
from tests.rest import test_v2drive as flows
from tests.rest import test_v2drive_audit as audit
from tests.rest import test_v2drive_oauth as oauth
from tests.rest import test_v2drive_search as search
from tests.rest import test_v2drive_trash as trash
from tests.rest import test_v2drive_versions as versions
from tests.rest import test_v2drive_webhooks as hooks

pytestmark = pytest.mark.postgres
# As the SQLite module nodes: many sign-ups in one test, loopback webhooks.
EXTRA = hooks.NODE_EXTRA.replace("[accounts]\n", '[accounts]\nrest_max_upload = "8MiB"\n')


def test_drive_flows_on_postgres(tmp_path: Path, pg_url: str,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTHLIB_INSECURE_TRANSPORT", "1")  # loopback http
    node = prepare_node(tmp_path / "node1", pg_url, extra=EXTRA)
    node.start()
    try:
        flows.test_users_me_and_auth_errors(node)
        flows.test_presigned_upload_metadata_and_pages(node)
        flows.test_folder_move_is_seen_by_s3_and_sftp(node)
        flows.test_sandbox_keys_see_only_the_sandbox(node)
        audit.test_changes_of_every_protocol_are_in_the_audit_log(node)
        audit.test_entries_name_the_client_of_every_protocol(node)
        trash.test_trash_and_restore_are_seen_by_s3(node)
        trash.test_folders_in_the_trash(node)
        trash.test_restore_keeps_the_time_machine_history(node)
        search.test_search_every_protocol_ranked_and_filtered(node)
        oauth.test_authorization_code_pkce_refresh_scopes_revoke(node)
        oauth.test_public_client_and_refusals(node)
        versions.test_versions_list_and_restore(node)
        hooks.test_document_payloads_signed(node)
    finally:
        node.stop()
