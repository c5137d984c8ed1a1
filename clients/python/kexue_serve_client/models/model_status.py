from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.model_status_labels import ModelStatusLabels
    from ..models.model_status_manifest_type_0 import ModelStatusManifestType0
    from ..models.version_status import VersionStatus


T = TypeVar("T", bound="ModelStatus")


@_attrs_define
class ModelStatus:
    """
    Attributes:
        id (str): The model's name (OpenAI's `id`).
        created (int): When the serving version was made (its manifest's created_at), in Unix seconds; 0 while no
            version serves.
        name (str):
        versions (list[VersionStatus]):
        object_ (Literal['model'] | Unset):  Default: 'model'.
        owned_by (str | Unset):  Default: 'kexue-serve'.
        task (None | str | Unset): embedding, qa, generation or density.
        family (None | str | Unset):
        serving_version (int | None | Unset): The version answering requests that name none: the newest loaded.
        version_policy (str | Unset): VERSION_POLICY: which versions are loaded at once ('latest', 'latest:N', 'all');
            each loaded version is AVAILABLE and answers requests that name it. Default: 'latest'.
        labels (ModelStatusLabels | Unset): The version labels in force, from the model's labels.json: label -> version.
        labels_error (None | str | Unset): Why labels.json is not in force (not valid, or it names a version that is not
            loaded: the last good labels stay), or that a label in force names a version no longer loaded.
        manifest (ModelStatusManifestType0 | None | Unset): manifest.json of the serving version.
    """

    id: str
    created: int
    name: str
    versions: list[VersionStatus]
    object_: Literal["model"] | Unset = "model"
    owned_by: str | Unset = "kexue-serve"
    task: None | str | Unset = UNSET
    family: None | str | Unset = UNSET
    serving_version: int | None | Unset = UNSET
    version_policy: str | Unset = "latest"
    labels: ModelStatusLabels | Unset = UNSET
    labels_error: None | str | Unset = UNSET
    manifest: ModelStatusManifestType0 | None | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        from ..models.model_status_manifest_type_0 import ModelStatusManifestType0  # noqa: PLC0415

        id = self.id

        created = self.created

        name = self.name

        versions = []
        for versions_item_data in self.versions:
            versions_item = versions_item_data.to_dict()
            versions.append(versions_item)

        object_ = self.object_

        owned_by = self.owned_by

        task: None | str | Unset
        if isinstance(self.task, Unset):
            task = UNSET
        else:
            task = self.task

        family: None | str | Unset
        if isinstance(self.family, Unset):
            family = UNSET
        else:
            family = self.family

        serving_version: int | None | Unset
        if isinstance(self.serving_version, Unset):
            serving_version = UNSET
        else:
            serving_version = self.serving_version

        version_policy = self.version_policy

        labels: dict[str, Any] | Unset = UNSET
        if not isinstance(self.labels, Unset):
            labels = self.labels.to_dict()

        labels_error: None | str | Unset
        if isinstance(self.labels_error, Unset):
            labels_error = UNSET
        else:
            labels_error = self.labels_error

        manifest: dict[str, Any] | None | Unset
        if isinstance(self.manifest, Unset):
            manifest = UNSET
        elif isinstance(self.manifest, ModelStatusManifestType0):
            manifest = self.manifest.to_dict()
        else:
            manifest = self.manifest

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "id": id,
                "created": created,
                "name": name,
                "versions": versions,
            }
        )
        if object_ is not UNSET:
            field_dict["object"] = object_
        if owned_by is not UNSET:
            field_dict["owned_by"] = owned_by
        if task is not UNSET:
            field_dict["task"] = task
        if family is not UNSET:
            field_dict["family"] = family
        if serving_version is not UNSET:
            field_dict["serving_version"] = serving_version
        if version_policy is not UNSET:
            field_dict["version_policy"] = version_policy
        if labels is not UNSET:
            field_dict["labels"] = labels
        if labels_error is not UNSET:
            field_dict["labels_error"] = labels_error
        if manifest is not UNSET:
            field_dict["manifest"] = manifest

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.model_status_labels import ModelStatusLabels  # noqa: PLC0415
        from ..models.model_status_manifest_type_0 import ModelStatusManifestType0  # noqa: PLC0415
        from ..models.version_status import VersionStatus  # noqa: PLC0415

        d = dict(src_dict)
        id = d.pop("id")

        created = d.pop("created")

        name = d.pop("name")

        versions = []
        _versions = d.pop("versions")
        for versions_item_data in _versions:
            versions_item = VersionStatus.from_dict(versions_item_data)

            versions.append(versions_item)

        object_ = cast(Literal["model"] | Unset, d.pop("object", UNSET))
        if object_ != "model" and not isinstance(object_, Unset):
            raise ValueError(f"object must match const 'model', got '{object_}'")

        owned_by = d.pop("owned_by", UNSET)

        def _parse_task(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        task = _parse_task(d.pop("task", UNSET))

        def _parse_family(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        family = _parse_family(d.pop("family", UNSET))

        def _parse_serving_version(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        serving_version = _parse_serving_version(d.pop("serving_version", UNSET))

        version_policy = d.pop("version_policy", UNSET)

        _labels = d.pop("labels", UNSET)
        labels: ModelStatusLabels | Unset
        if isinstance(_labels, Unset):
            labels = UNSET
        else:
            labels = ModelStatusLabels.from_dict(_labels)

        def _parse_labels_error(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        labels_error = _parse_labels_error(d.pop("labels_error", UNSET))

        def _parse_manifest(data: object) -> ModelStatusManifestType0 | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                manifest_type_0 = ModelStatusManifestType0.from_dict(data)

                return manifest_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(ModelStatusManifestType0 | None | Unset, data)

        manifest = _parse_manifest(d.pop("manifest", UNSET))

        model_status = cls(
            id=id,
            created=created,
            name=name,
            versions=versions,
            object_=object_,
            owned_by=owned_by,
            task=task,
            family=family,
            serving_version=serving_version,
            version_policy=version_policy,
            labels=labels,
            labels_error=labels_error,
            manifest=manifest,
        )

        model_status.additional_properties = d
        return model_status

    @property
    def additional_keys(self) -> list[str]:
        return list(self.additional_properties.keys())

    def __getitem__(self, key: str) -> Any:
        return self.additional_properties[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.additional_properties[key] = value

    def __delitem__(self, key: str) -> None:
        del self.additional_properties[key]

    def __contains__(self, key: str) -> bool:
        return key in self.additional_properties
