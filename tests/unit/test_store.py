"""Durable files: JSON lines that survive a crash mid-line, and whole files replaced atomically."""

import errno
import json
import os
import pathlib
import resource

import pytest

from saltext.lbpair.core import store


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


def write_bytes(path, data):
    with open(path, "ab") as handle:
        handle.write(data)


def test_scan_skips_and_counts_damaged_lines_and_ignores_blank_ones(tmp_path):
    path = str(tmp_path / "records.jsonl")
    write_bytes(path, b'{"n": 1}\n[1]\nnot json\n\n{"n": 2, "caf\xe9": 1}\n{"n": \x00 3}\n   \n{"n": 4}\n{"n": 5, "cut')
    assert store.scan(path) == ([{"n": 1}, {"n": 4}], 5)
    assert store.scan(str(tmp_path / "missing.jsonl")) == ([], 0)


def test_scan_from_an_offset_reads_only_what_follows(tmp_path):
    path = str(tmp_path / "records.jsonl")
    store.append_records(path, [{"n": 1}])
    size = os.path.getsize(path)
    store.append_records(path, [{"n": 2}, {"n": 3}])
    assert store.scan(path, size) == ([{"n": 2}, {"n": 3}], 0)


def test_records_backward_are_the_records_newest_first_across_blocks(tmp_path):
    path = str(tmp_path / "records.jsonl")
    records = [{"n": n, "pad": "x" * (n % 7) * 10} for n in range(200)]
    store.append_records(path, records)
    write_bytes(path, b'{"long": "' + b"y" * 5000 + b'"}\n{"n": 200, "cut')
    backward = list(store.records_backward(path, block=64))
    assert backward[0] == {"long": "y" * 5000}
    assert backward[1:] == records[::-1]
    assert list(store.records_backward(str(tmp_path / "missing.jsonl"))) == []


def test_a_failed_append_leaves_the_file_as_it_was(tmp_path, file_size_limit):
    path = str(tmp_path / "records.jsonl")
    store.append_records(path, [{"n": 1}])
    before = pathlib.Path(path).read_bytes()
    file_size_limit(len(before) + 20)  # room for part of the batch only
    with pytest.raises(OSError) as error:
        store.append_records(path, [{"n": 2, "pad": "x" * 10}, {"n": 3, "pad": "x" * 10}])
    assert error.value.errno == errno.EFBIG
    assert pathlib.Path(path).read_bytes() == before
    file_size_limit(resource.RLIM_INFINITY)
    store.append_records(path, [{"n": 4}])
    assert store.scan(path) == ([{"n": 1}, {"n": 4}], 0)


DOCUMENTS = [("a list", b"[]"), ("text", b'"text"'), ("a number", b"42"), ("null", b"null"),
             ("deeply nested", b"[" * 100000), ("not UTF-8", b'{"a": "\xe9"}')]  # fmt: skip


@pytest.mark.parametrize(("what", "document"), DOCUMENTS, ids=[row[0] for row in DOCUMENTS])
def test_json_document_of_another_type_or_unreadable_gives_the_default(tmp_path, what, document):
    path = tmp_path / "state.json"
    path.write_bytes(document)
    assert store.read_json(str(path), {"default": True}) == {"default": True}
