"""Pydantic model of one LLaMA-Factory 0.9.5 ``dataset_info.json`` entry, and the pure merge of entries.

LF's ``DatasetAttr.join`` silently ignores unknown keys, so ``extra="forbid"`` catches typos here first.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from .errors import UsageError

_FORBID = ConfigDict(extra="forbid", frozen=True)


class Columns(BaseModel):
    """Column names LF reads from each row (LF's defaults apply to keys left unset)."""

    model_config = _FORBID
    prompt: str | None = None
    query: str | None = None
    response: str | None = None
    history: str | None = None
    messages: str | None = None
    system: str | None = None
    tools: str | None = None
    images: str | None = None
    videos: str | None = None
    audios: str | None = None
    chosen: str | None = None
    rejected: str | None = None
    kto_tag: str | None = None


class Tags(BaseModel):
    """Role and content keys inside sharegpt-style message lists."""

    model_config = _FORBID
    role_tag: str | None = None
    content_tag: str | None = None
    user_tag: str | None = None
    assistant_tag: str | None = None
    observation_tag: str | None = None
    function_tag: str | None = None
    system_tag: str | None = None


class DatasetInfoEntry(BaseModel):
    """One entry; exactly the keys LF 0.9.5's ``DatasetAttr`` understands."""

    model_config = _FORBID
    file_name: str | None = Field(None, description="file or folder relative to dataset_dir")
    hf_hub_url: str | None = None
    ms_hub_url: str | None = None
    om_hub_url: str | None = None
    script_url: str | None = None
    cloud_file_name: str | None = None
    formatting: Literal["alpaca", "sharegpt", "openai"] = "alpaca"
    ranking: bool | None = None
    subset: str | None = None
    split: str | None = None
    folder: str | None = None
    num_samples: int | None = None
    columns: Columns | None = None
    tags: Tags | None = None

    def to_json(self) -> dict:
        """The JSON object as written: unset keys left out, ``formatting`` always explicit."""
        data = self.model_dump(exclude_none=True)
        data["formatting"] = self.formatting
        return data


def merge_entries(existing: dict, new: dict[str, dict], *, overwrite: bool, path: str) -> dict:
    """Return ``existing`` plus ``new`` entries; other entries keep their exact values and order.

    An entry of the same name with a different value is an error unless ``overwrite``.

    >>> merge_entries({"a": {"file_name": "a.json"}}, {"b": {"file_name": "b.json"}}, overwrite=False, path="x")
    {'a': {'file_name': 'a.json'}, 'b': {'file_name': 'b.json'}}
    """
    merged = dict(existing)
    for name, entry in new.items():
        old = merged.get(name)
        if old is not None and old != entry and not overwrite:
            raise UsageError(
                f"{path}: entry '{name}' already exists with a different value — choose another --name, "
                "or pass --overwrite to replace it (other entries are kept either way)"
            )
        merged[name] = entry
    return merged
