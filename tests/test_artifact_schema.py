"""Hand-made and damaged artifacts are refused in one place, with one line naming what is wrong."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from zoo.store.artifact import check_roles, read_header, read_metadata
from zoo.errors import ArtifactError

GOOD_META = {
    "format": "zoo-model", "zoo_version": "0.1.0", "model": "x:m", "arch_version": "1", "task": "x:t",
    "config": json.dumps({"model": {"name": "x:m"}, "task": {"name": "x:t"}, "dataset": {"name": "x:d"}}),
    "sizes": json.dumps({"vocab_size": 4}),
    "tokenizers": json.dumps({"text": {"name": "x:tok", "state": {}}}),
}


def _write(path: Path, meta: object, tensors: dict | None = None, data: bytes | None = None) -> Path:
    tensors = {"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}} if tensors is None else tensors
    header = {"__metadata__": meta, **tensors}
    raw = json.dumps(header).encode()
    payload = bytes(16) if data is None else data
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + payload)
    return path


def test_a_well_formed_artifact_reads(tmp_path):
    meta = read_metadata(_write(tmp_path / "m.safetensors", GOOD_META))
    assert meta["sizes"] == {"vocab_size": 4}
    check_roles("m", meta, ["text"])
    with pytest.raises(ArtifactError, match="no state for role 'src'"):
        check_roles("m", meta, ["src"])


@pytest.mark.parametrize("change, message", [
    ({"sizes": 3}, "corrupt safetensors metadata \\('sizes' is not a string\\)"),
    ({"config": None}, "'config' is not a string"),
    ({"config": "[1, 2]"}, "metadata 'config' must be a JSON object"),
    ({"config": "{not json"}, "metadata 'config' is not valid JSON"),
    ({"config": json.dumps({"model": {"name": "x:m"}, "task": {"name": "x:t"}})}, "'config.dataset' must be a table"),
    ({"sizes": json.dumps({"vocab_size": "4"})}, "'sizes.vocab_size' must be an integer"),
    ({"tokenizers": json.dumps({"text": {"name": "x:tok"}})}, "'tokenizers.text' must be an object"),
    ({"format": "other"}, "not a zoo model"),
])
def test_bad_metadata_is_refused_naming_the_key(tmp_path, change, message):
    meta = {**GOOD_META, **change}
    with pytest.raises(ArtifactError, match=message):
        read_metadata(_write(tmp_path / "m.safetensors", meta))


@pytest.mark.parametrize("drop", ["config", "sizes", "tokenizers", "model", "arch_version"])
def test_missing_metadata_is_refused(tmp_path, drop):
    meta = {k: v for k, v in GOOD_META.items() if k != drop}
    with pytest.raises(ArtifactError, match=f"metadata has no '{drop}'"):
        read_metadata(_write(tmp_path / "m.safetensors", meta))


@pytest.mark.parametrize("tensor, message", [
    ({"dtype": "F32", "shape": [3, 3], "data_offsets": [0, 16]}, "needs 36 bytes but its byte range holds 16"),
    ({"dtype": "Q7", "shape": [2, 2], "data_offsets": [0, 16]}, "unknown dtype"),
    ({"dtype": "F32", "shape": [-1, 2], "data_offsets": [0, 16]}, "corrupt safetensors header at tensor 'w'"),
    ({"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 32]}, "truncated"),
    ({"dtype": "F32", "shape": [2, 2]}, "corrupt safetensors header at tensor 'w'"),
])
def test_tensor_entries_must_fit_their_byte_range(tmp_path, tensor, message):
    with pytest.raises(ArtifactError, match=message):
        read_header(_write(tmp_path / "m.safetensors", GOOD_META, {"w": tensor}))


def test_zoo_info_on_a_hand_made_artifact_is_one_line_not_a_traceback(tmp_path):
    path = _write(tmp_path / "m.safetensors", {**GOOD_META, "sizes": 3})
    proc = subprocess.run([sys.executable, "-m", "zoo", "info", str(path)], capture_output=True, text=True)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and str(path) in proc.stderr
