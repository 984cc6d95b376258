"""The report's sections, in page order: one module each, with its ``SPEC`` (anchor, title, how
to read it, the command that makes its files) and ``section(ctx) -> Section``."""

from __future__ import annotations

from collections.abc import Callable

from mdnworld.report.context import Context, Spec
from mdnworld.report.html import Section
from mdnworld.report.sections import (
    committed,
    components,
    controller,
    data,
    detectors,
    dreams,
    rnn,
    vae,
    worlds_events,
)

SECTIONS: tuple[tuple[Spec, Callable[[Context], Section]], ...] = tuple(
    (m.SPEC, m.section)
    for m in (data, vae, rnn, dreams, components, worlds_events, committed, detectors, controller)
)
