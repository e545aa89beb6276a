"""Rate-limit settings: ``<rate per second>,<burst>`` values (no I/O, imported by settings)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RateLimit:
    """``rate`` requests per second on average, up to ``burst`` at once."""

    rate: float
    burst: int

    @property
    def interval_ms(self) -> float:
        """Time one request costs in the GCRA (the emission interval)."""
        return 1000.0 / self.rate


def parse_rate(name: str, raw: str | None, default: RateLimit | None) -> RateLimit | None:
    """``"20,40"`` (20/s, burst 40), ``"20"`` (burst = 2 × rate), ``"off"`` (no limit).

    Raises ``ValueError`` naming ``name`` for anything else.
    """
    if raw is None or raw.strip() == "":
        return default
    text = raw.strip().lower()
    if text in ("off", "0", "none"):
        return None
    rate_text, _, burst_text = text.partition(",")
    try:
        rate = float(rate_text.removesuffix("/s"))
        burst = int(burst_text) if burst_text else max(1, int(rate * 2))
    except ValueError as exc:
        raise ValueError(f"{name} must look like '20,40' (per second, burst) or 'off', "
                         f"got {raw!r}") from exc
    if not (0 < rate <= 1_000_000 and 1 <= burst <= 10_000_000):
        raise ValueError(f"{name}: rate must be in (0, 1e6] and burst in [1, 1e7], got {raw!r}")
    return RateLimit(rate, burst)


PLAYER_DEFAULT = RateLimit(20, 40)
IP_DEFAULT = RateLimit(200, 400)
DRAW_DEFAULT = RateLimit(5, 10)
MERCHANT_DEFAULT = RateLimit(50, 200)
MERCHANT_AUTH_DEFAULT = RateLimit(1, 20)
EVENTS_DEFAULT = RateLimit(500, 10_000)
"""What ``load_settings`` uses when the variables are unset (``Settings()`` has none)."""
