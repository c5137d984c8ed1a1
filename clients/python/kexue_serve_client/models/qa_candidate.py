from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.qa_evidence import QAEvidence


T = TypeVar("T", bound="QACandidate")


@_attrs_define
class QACandidate:
    """
    Attributes:
        text (str):
        score (float):
        passage_index (int | None):
        evidence (list[QAEvidence] | None | Unset): With return_evidence: the passage spans the answer attended to,
            heaviest first (at most 3); null otherwise.
    """

    text: str
    score: float
    passage_index: int | None
    evidence: list[QAEvidence] | None | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        text = self.text

        score = self.score

        passage_index: int | None
        passage_index = self.passage_index

        evidence: list[dict[str, Any]] | None | Unset
        if isinstance(self.evidence, Unset):
            evidence = UNSET
        elif isinstance(self.evidence, list):
            evidence = []
            for evidence_type_0_item_data in self.evidence:
                evidence_type_0_item = evidence_type_0_item_data.to_dict()
                evidence.append(evidence_type_0_item)

        else:
            evidence = self.evidence

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "text": text,
                "score": score,
                "passage_index": passage_index,
            }
        )
        if evidence is not UNSET:
            field_dict["evidence"] = evidence

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.qa_evidence import QAEvidence  # noqa: PLC0415

        d = dict(src_dict)
        text = d.pop("text")

        score = d.pop("score")

        def _parse_passage_index(data: object) -> int | None:
            if data is None:
                return data
            return cast(int | None, data)

        passage_index = _parse_passage_index(d.pop("passage_index"))

        def _parse_evidence(data: object) -> list[QAEvidence] | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, list):
                    raise TypeError()
                evidence_type_0 = []
                _evidence_type_0 = data
                for evidence_type_0_item_data in _evidence_type_0:
                    evidence_type_0_item = QAEvidence.from_dict(evidence_type_0_item_data)

                    evidence_type_0.append(evidence_type_0_item)

                return evidence_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(list[QAEvidence] | None | Unset, data)

        evidence = _parse_evidence(d.pop("evidence", UNSET))

        qa_candidate = cls(
            text=text,
            score=score,
            passage_index=passage_index,
            evidence=evidence,
        )

        qa_candidate.additional_properties = d
        return qa_candidate

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
