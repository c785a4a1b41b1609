"""v2-drive full-text search (seed 004) against a live node: names, content
of text formats, tags and metadata, kept current for changes made through
S3, SFTP and v2-drive, ranked, with the document's filters."""

from __future__ import annotations

import io
import json
import sqlite3

import httpx

from tests.harness import NodeProcess
from tests.rest.test_v2drive_support import (
    auth,
    drive_user,
    error_of,
    s3_client,
    sftp_client,
    upload,
)


def search(node: NodeProcess, key: str, **params: str) -> dict:
    r = httpx.get(f"{node.web_url}/v2/search", params=params, headers=auth(key))
    assert r.status_code == 200, r.text
    return r.json()


def names(answer: dict) -> list[str]:
    return [r["name"] for r in answer["results"]]


def test_search_every_protocol_ranked_and_filtered(node: NodeProcess) -> None:
    user, key = drive_user(node)
    s3 = s3_client(node, user)
    s3.put_object(Bucket=user.bucket, Key="reports/Q3_Financial_Report.pdf",
                  Body=b"%PDF-1.4 binary", ContentType="application/pdf",
                  Metadata={"client": "Acme"}, Tagging="project=zephyr")
    transport, sftp = sftp_client(user)
    try:
        sftp.putfo(io.BytesIO(b"Minutes: the quarterly budget discussion went well."),
                   f"/{user.bucket}/meeting.txt")
    finally:
        sftp.close()
        transport.close()
    upload(node, key, "data.json", json.dumps({"codename": "Nightingale"}).encode())
    budget = upload(node, key, "budget.csv", b"item,amount\nrent,100\n")

    answer = search(node, key, q="Q3 report")
    assert set(answer) >= {"results", "total", "took_ms"}
    [hit] = answer["results"]
    assert (hit["type"], hit["name"]) == ("file", "Q3_Financial_Report.pdf")
    assert hit["highlights"] == {"name": ["<mark>Q3</mark>_Financial_<mark>Report</mark>.pdf"]}
    assert 0 < hit["score"] <= 1 and answer["total"] == 1 and hit["id"].startswith("fl_")
    assert isinstance(answer["took_ms"], int | float)
    assert names(search(node, key, q="acme")) == ["Q3_Financial_Report.pdf"]  # S3 metadata
    assert names(search(node, key, q="zephyr")) == ["Q3_Financial_Report.pdf"]  # tags
    assert names(search(node, key, q="nightingale")) == ["data.json"]  # JSON content
    assert names(search(node, key, q="discuss")) == ["meeting.txt"]  # SFTP, by prefix
    # A name match ranks above a content match.
    ranked = search(node, key, q="budget")
    assert names(ranked) == ["budget.csv", "meeting.txt"]
    assert ranked["results"][0]["score"] >= ranked["results"][1]["score"]

    # Custom metadata set through v2-drive is searchable at once.
    r = httpx.post(f"{node.web_url}/v2/files/{budget['id']}/metadata", headers=auth(key),
                   json={"template": "document_classification",
                         "fields": {"department": "Treasury"}})
    assert r.status_code == 200, r.text
    assert names(search(node, key, q="treasury")) == ["budget.csv"]

    # Filters.
    folders = search(node, key, q="reports", type="folder")
    assert [(h["type"], h["name"], h["path"]) for h in folders["results"]] == [
        ("folder", "reports", "/reports")]
    assert folders["results"][0]["id"].startswith("fld_")
    made = httpx.post(f"{node.web_url}/v2/folders", json={"name": "Invoices_2024"},
                      headers=auth(key)).json()
    empty = search(node, key, q="invoices", type="folder")["results"]
    assert [(h["id"], h["highlights"]["name"]) for h in empty] == [
        (made["id"], ["<mark>Invoices</mark>_2024"])]
    assert names(search(node, key, q="budget", file_type="text/csv")) == ["budget.csv"]
    assert search(node, key, q="budget", owner_id="user_someone_else")["total"] == 0
    assert search(node, key, q="budget", owner_id=user.account_id)["total"] == 2

    # Changes through S3 are seen: a delete drops the file, and its empty folder.
    s3.delete_object(Bucket=user.bucket, Key="reports/Q3_Financial_Report.pdf")
    assert search(node, key, q="Q3")["total"] == 0
    assert search(node, key, q="reports", type="folder")["total"] == 0
    # The trash too: a trashed file is not found, a restored one is.
    assert httpx.delete(f"{node.web_url}/v2/files/{budget['id']}",
                        headers=auth(key)).status_code == 204
    assert names(search(node, key, q="budget")) == ["meeting.txt"]
    assert httpx.post(f"{node.web_url}/v2/trash/{budget['id']}/restore",
                      headers=auth(key)).status_code == 200
    assert names(search(node, key, q="budget")) == ["budget.csv", "meeting.txt"]

    # Another user's drive is not searched; errors of the endpoint.
    other, other_key = drive_user(node)
    assert search(node, other_key, q="budget")["total"] == 0
    base = f"{node.web_url}/v2/search"
    assert error_of(httpx.get(base, headers=auth(key))) == (400, "invalid_request")
    assert error_of(httpx.get(base, params={"q": "x", "type": "album"},
                              headers=auth(key))) == (400, "invalid_request")
    user.client.close()
    other.client.close()


def test_only_drive_buckets_are_indexed(node: NodeProcess) -> None:
    """Search indexes the buckets v2-drive serves, with the keys they held
    before v2-drive first served them; a bucket used only through S3 stays
    out of the index (indexing it slowed S3 down)."""
    user, key = drive_user(node)
    s3 = s3_client(node, user)
    s3.create_bucket(Bucket=f"{user.bucket}-s3only",
                     CreateBucketConfiguration={"LocationConstraint": "eu-central-1"})
    s3.put_object(Bucket=f"{user.bucket}-s3only", Key="Pelican_notes.txt", Body=b"pelican")
    s3.put_object(Bucket=user.bucket, Key="Pelican_plan.txt", Body=b"before the drive")

    assert names(search(node, key, q="pelican")) == ["Pelican_plan.txt"]
    s3.put_object(Bucket=f"{user.bucket}-s3only", Key="more/Pelican.txt", Body=b"pelican")
    assert names(search(node, key, q="pelican")) == ["Pelican_plan.txt"]
    with sqlite3.connect(node.settings.metadata.url.removeprefix("sqlite://")) as db:
        indexed = {b for (b,) in db.execute("SELECT DISTINCT bucket FROM drive_search_docs "
                                            "WHERE bucket LIKE ?", (f"{user.bucket}%",))}
    assert indexed == {user.bucket}
    user.client.close()
