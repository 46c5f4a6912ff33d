"""Read the recipe's parallel sources: each task reads the languages it owns, from every source."""

from __future__ import annotations

from datatrove.pipeline.base import PipelineStep


def languages_of_task(langs: list[str], rank: int, world_size: int) -> list[str]:
    """Whole languages go to one task (round robin over the sorted list), so per-language work needs no exchange
    between tasks and the rows do not depend on how many tasks there are."""
    return sorted(langs)[rank::world_size]


class PairReader(PipelineStep):
    name = "read_pairs"
    type = "📖 - READER"

    def __init__(self, sources: list, langs: list[str], progress: bool = False):
        super().__init__()
        self.sources = sources
        self.langs = langs
        self.progress = progress

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        mine = set(languages_of_task(self.langs, rank, world_size))
        sources = self.sources
        if self.progress:
            from tqdm import tqdm

            sources = tqdm(sources, desc=f"task {rank}: sources", unit="source", position=rank, leave=False)
        for source in sources:
            wanted = mine & source.languages()
            if not wanted:
                continue
            for table in source.read(wanted):
                self.stat_update("pairs", value=table.num_rows)
                yield table
