"""Typed readers of the run's results files, shared by every renderer: the HTML report,
RESULTS.md (``collect-results``, ``controller-results``), the analyses' ``summary.md`` and the
terminal summaries.

Each ``read_x(path)`` returns a frozen dataclass holding only what the renderers use. A missing
file raises ``MissingError``; a file that is not JSON, lacks a key or holds the wrong kind of
value raises ``DataError`` naming the file and the key. Values are kept as the file has them
(an int stays an int), so text made from them is the same as text made from the raw JSON.
Where a writer did not always write a key, the field is optional (None or a default).

By topic: ``training`` (episodes, V, M, dreams), ``analyses`` (A, B, C), ``controller``
(controller, best candidate, real-game scores); ``base`` holds what they share.
"""

from mdnworld.records.analyses import (
    Committed,
    CommittedRow,
    ComponentsModel,
    ComponentsOverTime,
    WorldsEvents,
    WorldsEventsRow,
    read_committed,
    read_components,
    read_worlds_events,
)
from mdnworld.records.base import dedupe, read_log_rows
from mdnworld.records.controller import (
    ControllerMeta,
    EpisodeScore,
    IterateRound,
    Scores,
    ScoreVideo,
    read_best_fitness,
    read_controller_meta,
    read_iterate_round,
    read_scores,
    read_selection,
)
from mdnworld.records.training import (
    DreamSettings,
    EpisodeEntry,
    EpisodeManifest,
    RnnMeta,
    RnnMetrics,
    VaeMeta,
    read_dream_settings,
    read_episode_manifest,
    read_rnn_meta,
    read_vae_meta,
    rnn_meta,
)

__all__ = [
    "Committed",
    "CommittedRow",
    "ComponentsModel",
    "ComponentsOverTime",
    "ControllerMeta",
    "DreamSettings",
    "EpisodeEntry",
    "EpisodeManifest",
    "EpisodeScore",
    "IterateRound",
    "RnnMeta",
    "RnnMetrics",
    "ScoreVideo",
    "Scores",
    "VaeMeta",
    "WorldsEvents",
    "WorldsEventsRow",
    "dedupe",
    "read_best_fitness",
    "read_selection",
    "read_committed",
    "read_components",
    "read_controller_meta",
    "read_dream_settings",
    "read_episode_manifest",
    "read_iterate_round",
    "read_log_rows",
    "read_rnn_meta",
    "read_scores",
    "read_vae_meta",
    "read_worlds_events",
    "rnn_meta",
]
