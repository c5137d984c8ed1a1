from enum import StrEnum


class DensityScoreResponseLogdet(StrEnum):
    EXACT = "exact"
    SERIES = "series"

    def __str__(self) -> str:
        return str(self.value)
