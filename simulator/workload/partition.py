"""How layers are split over pipeline chunks, and which chunk sits on which stage."""


def layers_per_chunk(layers: int, chunks: int) -> list[int]:
    """Split `layers` over `chunks` as evenly as possible.

    When they do not divide, the first and last chunks (which also hold the embedding and the
    LM head) get the smaller share, as Llama 3 405B does with 126 layers on 16 stages (7 on the
    first and last stage, 8 elsewhere; Llama Team 2024, sec. 3.3.2).
    """
    if chunks > layers:
        raise ValueError(f"{chunks} chunks for {layers} layers")
    base, extra = divmod(layers, chunks)
    counts = [base] * chunks
    # Hand the remainder to the middle chunks first, ends last.
    order = (
        list(range(1, chunks - 1)) + [c for c in (0, chunks - 1) if chunks > 1] if chunks > 2 else list(range(chunks))
    )
    for c in order[:extra]:
        counts[c] += 1
    return counts


def stage_of_chunk(chunk: int, pp: int) -> int:
    """Interleaved placement (Narayanan et al. 2021 sec. 2.2.2): chunk c lives on stage c mod pp."""
    return chunk % pp


def chunks_of_stage(stage: int, pp: int, virtual_stages: int) -> list[int]:
    return [stage + v * pp for v in range(virtual_stages)]
