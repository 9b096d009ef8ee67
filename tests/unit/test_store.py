"""Durable files: JSON lines that survive a crash mid-line, and whole files replaced atomically."""

import json
import os

from lbpair_lib import store


def test_append_starts_a_new_line_after_a_line_cut_short(tmp_path):
    path = str(tmp_path / "records.jsonl")
    store.append_records(path, [{"n": 1}])
    with open(path, "a", encoding="utf-8") as handle:
        handle.write('{"n": 2, "cut')  # a crash mid-line
    store.append_records(path, [{"n": 3}])
    assert store.read_records(path) == [{"n": 1}, {"n": 3}]


def test_rewrite_replaces_the_whole_file_and_leaves_no_candidate(tmp_path):
    path = str(tmp_path / "records.jsonl")
    store.append_records(path, [{"n": 1}, {"n": 2}])
    store.rewrite_records(path, [{"n": 2}])
    assert store.read_records(path) == [{"n": 2}]
    assert os.listdir(tmp_path) == ["records.jsonl"]


def test_a_replaced_file_keeps_its_mode(tmp_path):
    path = tmp_path / "haproxy.cfg"
    path.write_text("old\n")
    path.chmod(0o640)
    store.write_atomic(str(path), "new\n")
    assert path.read_text() == "new\n" and (path.stat().st_mode & 0o777) == 0o640


def test_json_document_falls_back_to_the_default_when_missing_or_broken(tmp_path):
    path = tmp_path / "state.json"
    assert store.read_json(str(path), {}) == {}
    store.write_json(str(path), {"dns": {"lbpair_51": "lb2"}})
    assert json.loads(path.read_text()) == {"dns": {"lbpair_51": "lb2"}}
    path.write_text('{"dns": ')
    assert store.read_json(str(path), {"empty": True}) == {"empty": True}
