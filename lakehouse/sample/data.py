"""Clean, realistic landing rows of the sample-data generator: advertisers, campaigns and their daily performance.

Names carry the commas, quotes and line breaks real exports hold; campaigns follow flights and budgets; daily
performance follows each channel's funnel (spend buys clicks at the CPC, clicks imply impressions at the CTR).
Carrier rows are valid rows with fresh keys that host injected defects. Every row is a tuple of strings in
``SOURCE_COLUMNS`` order, drawn from the random stream it is given.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import date, timedelta

from lakehouse.contracts import CAMPAIGN_TYPES, INDUSTRIES, OBJECTIVES

YEAR_START = date(2024, 1, 1)  # a Monday, so ISO week k of 2024 starts YEAR_START + 7k days
YEAR_END = date(2024, 12, 31)
WEEKS = 53
COUNTRIES = ("US", "US", "US", "GB", "GB", "DE", "FR", "CA", "AU", "NL", "ES", "IT", "SE", "JP", "BR", "IN", "SG")
# channel: (CTR range, CPC range in cents)
CHANNELS = {
    "Search": ((0.02, 0.05), (100, 300)),
    "Shopping": ((0.01, 0.025), (50, 150)),
    "Social": ((0.006, 0.015), (50, 150)),
    "Video": ((0.004, 0.012), (50, 200)),
    "Display": ((0.001, 0.005), (30, 100)),
}
WEEKDAY_FACTOR = (1.0, 1.05, 1.05, 1.0, 0.95, 0.8, 0.75)
_FIRST = ("Olivia", "Liam", "Emma", "Noah", "Sofia", "Lucas", "Mia", "Hiroshi", "Priya", "Mateo", "Chloé", "Lars")
_LAST = ("Smith", "Müller", "García", "Nakamura", "O'Brien", "Rossi", "Dubois", "Jansen", "Silva", "Patel", "Chen")
_WORDS = ("Blue", "Summit", "Nova", "Harbor", "Apex", "Cedar", "Lumen", "Vertex", "Maple", "Orbit", "Atlas", "North")
_NOUNS = ("Foods", "Motors", "Labs", "Health", "Travel", "Studios", "Outfitters", "Bank", "Academy", "Media", "Goods")
_SUFFIXES = ("Inc", "LLC", "Ltd", "GmbH", "Group", "Co", "SA", "BV", "AB", "KK", "Pty Ltd", "Holdings")
_REGIONS = ("EMEA", "APAC", "North America", "LATAM")
_SEASONS = ("Spring", "Summer", "Autumn", "Holiday", "Q1", "Q2", "Q3", "Q4", "Back to School", "Black Friday")
_THEMES = ("Brand Awareness", "Prospecting", "Retargeting", "New Arrivals", "Clearance", "Loyalty", "Lead Gen")

Row = tuple[str, ...]


@dataclass(frozen=True)
class Campaign:
    """A campaign's landing row and the funnel its daily performance follows."""

    row: Row
    campaign_id: int
    first_day: date
    last_day: date  # before first_day for drafts, which never deliver
    ctr: tuple[float, float, float]  # (campaign CTR, channel floor, channel ceiling)
    cpc_cents: float
    cvr: float
    spend_cents: float
    aov_cents: int


def random_stream(seed: int, stream: str) -> random.Random:
    """One independent random stream per concern, so dirty_rate never changes the clean data."""
    return random.Random(f"{seed}:{stream}")


def money(cents: int) -> str:
    """Cents as a plain decimal amount with two places (``-12.05``)."""
    return f"{'-' if cents < 0 else ''}{abs(cents) // 100}.{abs(cents) % 100:02d}"


def _company_name(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.08:
        return f"{rng.choice(_LAST)}, {rng.choice(_LAST)} & Co"
    if roll < 0.12:
        return f'{rng.choice(_WORDS)} "{rng.choice(_NOUNS)}" {rng.choice(_SUFFIXES)}'
    if roll < 0.14:
        return f"{rng.choice(_WORDS)} {rng.choice(_NOUNS)}\n{rng.choice(_REGIONS)}"
    return f"{rng.choice(_LAST + _WORDS)} {rng.choice(_NOUNS)} {rng.choice(_SUFFIXES)}"


def _campaign_name(rng: random.Random, channel: str) -> str:
    season, theme = rng.choice(_SEASONS), rng.choice(_THEMES)
    roll = rng.random()
    if roll < 0.08:
        return f"{theme}, {season} | {channel}"
    if roll < 0.12:
        return f'{season} "{theme}" | {channel}'
    if roll < 0.14:
        return f"{season} {theme}\n{rng.choice(_REGIONS)}"
    return f"{season} 2024 {theme} | {channel}"


def advertiser_row(rng: random.Random, advertiser_id: int) -> Row:
    """One advertiser; about 15% have no account manager."""
    manager = "" if rng.random() < 0.15 else f"{rng.choice(_FIRST)} {rng.choice(_LAST)}"
    return (str(advertiser_id), _company_name(rng), rng.choice(INDUSTRIES), rng.choice(COUNTRIES), manager)


def _flight(rng: random.Random) -> tuple[date, date | None, str]:
    """Start, end (None: open-ended) and status; open-ended flights start late so no flight outgrows the year."""
    roll = rng.random()
    if roll < 0.03:
        start = YEAR_START + timedelta(days=rng.randint(335, 350))
        return start, YEAR_END, "Draft"
    if roll < 0.15:
        return YEAR_START + timedelta(days=rng.randint(180, 350)), None, rng.choice(("Active",) * 4 + ("Paused",))
    start = YEAR_START + timedelta(days=rng.randint(0, 335))
    end = min(start + timedelta(days=rng.randint(13, 150)), YEAR_END)
    status = "Active" if end == YEAR_END else "Completed"
    return start, end, "Paused" if rng.random() < 0.1 else status


def build_campaign(rng: random.Random, campaign_id: int, n_advertisers: int) -> Campaign:
    """One campaign of a random advertiser: its row, flight and the funnel of its channel."""
    channel = rng.choice(CAMPAIGN_TYPES)
    (ctr_low, ctr_high), (cpc_low, cpc_high) = CHANNELS[channel]
    start, end, status = _flight(rng)
    days = ((end or YEAR_END) - start).days + 1
    daily = rng.randrange(2000, 300000, 50)
    total = "" if end is None and rng.random() < 0.4 else money(max(daily, round(daily * days * rng.uniform(0.6, 1))))
    row = (
        str(campaign_id),
        str(rng.randint(1, n_advertisers)),
        _campaign_name(rng, channel),
        channel,
        status,
        "" if rng.random() < 0.1 else rng.choice(OBJECTIVES),
        start.isoformat(),
        "" if end is None else end.isoformat(),
        "" if rng.random() < 0.05 else money(daily),
        total,
    )
    last_day = start - timedelta(days=1) if status == "Draft" else end or YEAR_END
    ctr = (rng.uniform(ctr_low, ctr_high), ctr_low, ctr_high)
    cpc, cvr, aov = rng.uniform(cpc_low, cpc_high), rng.uniform(0.015, 0.09), rng.randint(2000, 25000)
    return Campaign(row, campaign_id, start, last_day, ctr, cpc, cvr, daily * rng.uniform(0.5, 0.95), aov)


def _performance_row(rng: random.Random, performance_id: int, campaign: Campaign, day: date, day_text: str) -> Row:
    """One day of one campaign: spend buys clicks at the CPC, clicks imply impressions at the CTR."""
    spend = campaign.spend_cents * WEEKDAY_FACTOR[day.weekday()] * rng.uniform(0.8, 1.2)
    cpc = campaign.cpc_cents * rng.uniform(0.95, 1.05)
    clicks = max(1, int(spend / cpc))
    base_ctr, ctr_low, ctr_high = campaign.ctr
    impressions = math.ceil(clicks / min(ctr_high, max(ctr_low, base_ctr * rng.uniform(0.9, 1.1))))
    conversions = min(clicks, int(clicks * campaign.cvr * rng.uniform(0.8, 1.2) + rng.random()))
    revenue = round(conversions * campaign.aov_cents * rng.uniform(0.8, 1.2))
    metrics = (str(impressions), str(clicks), str(conversions), money(round(clicks * cpc)), money(revenue))
    return (str(performance_id), str(campaign.campaign_id), day_text, *metrics)


def week_rows(rng: random.Random, week: int, campaigns: list[Campaign], first_id: int) -> list[Row]:
    """Performance of ISO week ``week`` (0-based), day by day, with ids counting up from ``first_id``."""
    monday = YEAR_START + timedelta(weeks=week)
    sunday = monday + timedelta(days=6)
    live = [c for c in campaigns if c.first_day <= sunday and c.last_day >= monday]
    rows: list[Row] = []
    for day in (monday + timedelta(days=d) for d in range(7)):
        text = day.isoformat()
        for campaign in live:
            if campaign.first_day <= day <= campaign.last_day:
                rows.append(_performance_row(rng, first_id + len(rows), campaign, day, text))
    return rows


def delivery_days(campaign: Campaign) -> int:
    """Days a campaign delivers, hence its performance rows; 0 for drafts."""
    return max(0, (campaign.last_day - campaign.first_day).days + 1)


def carrier_advertiser(rng: random.Random, advertiser_id: int) -> Row:
    """A plain advertiser: no quoting needed, every field set."""
    name = f"{rng.choice(_WORDS)} {rng.choice(_NOUNS)} {rng.choice(_SUFFIXES)}"
    manager = f"{rng.choice(_FIRST)} {rng.choice(_LAST)}"
    return (str(advertiser_id), name, rng.choice(INDUSTRIES), rng.choice(COUNTRIES), manager)


def carrier_campaign(rng: random.Random, campaign_id: int, n_advertisers: int) -> Row:
    """A plain 30-day campaign of an existing advertiser, every field set."""
    start, daily = YEAR_START + timedelta(days=rng.randint(31, 300)), rng.randrange(5000, 100000, 100)
    return (
        str(campaign_id),
        str(rng.randint(1, n_advertisers)),
        f"{rng.choice(_SEASONS)} {rng.choice(_THEMES)}",
        rng.choice(CAMPAIGN_TYPES),
        rng.choice(("Active", "Paused", "Completed")),
        rng.choice(OBJECTIVES),
        start.isoformat(),
        (start + timedelta(days=30)).isoformat(),
        money(daily),
        money(daily * 30),
    )


def carrier_performance(rng: random.Random, performance_id: int, week: int, n_campaigns: int) -> Row:
    """A plain day of an existing campaign in ISO week ``week`` (0-based), with a consistent funnel."""
    day = min(YEAR_END, YEAR_START + timedelta(weeks=week, days=rng.randint(0, 6)))
    impressions = rng.randint(2000, 50000)
    clicks = rng.randint(20, impressions // 40)
    conversions = rng.randint(1, clicks // 5)
    cost, revenue = clicks * rng.randint(30, 300), conversions * rng.randint(2000, 20000)
    metrics = (str(impressions), str(clicks), str(conversions), money(cost), money(revenue))
    return (str(performance_id), str(rng.randint(1, n_campaigns)), day.isoformat(), *metrics)
