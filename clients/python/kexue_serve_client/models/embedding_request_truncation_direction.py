from enum import StrEnum


class EmbeddingRequestTruncationDirection(StrEnum):
    LEFT = "left"
    RIGHT = "right"

    def __str__(self) -> str:
        return str(self.value)
