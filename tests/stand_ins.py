"""Stand-ins for the unit tier, where no service runs.

``StandInEmbedder`` takes the place of the embedder in an IngestContext when a test is about what the
worker does around embedding (staging, claims, a full disk, file safety, formats, capture metadata): it
hands out consecutive vector rows, as the embedder's append to the vectors store does, without a model.
End-to-end paths (the stack and browser tiers) use the real embedder.
"""

from __future__ import annotations


class StandInEmbedder:
    def __init__(self) -> None:
        self.rows = 0

    def embed_frames(self, items: list[tuple[int, str]]) -> list[int]:
        first, self.rows = self.rows, self.rows + len(items)
        return list(range(first, self.rows))

    def embed_video(self, media_id: int, frame_rows: list[int]) -> int:
        """A video's pooled vector: one more row."""
        return self.embed_frames([(media_id, "pooled")])[0]

    def close(self) -> None:
        pass
