"""The storefront's world: a product catalogue and a user population.

Everything is drawn from one seeded ``numpy.random.Generator`` so the same
``WorldConfig`` always yields the same shop.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CATEGORIES: tuple[str, ...] = ("electronics", "home", "fashion", "beauty", "sports", "toys")
"""Category names; a category's index is its ``category_id``."""

DEVICES: tuple[str, ...] = ("mobile", "desktop")
"""Device names; a device's index is its ``device_id``."""


@dataclass(frozen=True)
class WorldConfig:
    """Parameters of the simulated shop.

    Attributes:
        seed: Seed of the world (catalogue and users). Sessions use their own seeds.
        n_segments: Observable customer segments (e.g. from CRM). Each segment has its own
            mean taste over categories.
        n_users: Size of the user population.
        items_per_category: Items listed in each category.
        segment_taste_scale: Spread of segment mean tastes (logit scale). Larger makes
            personalisation matter more.
        user_taste_noise: Per-user deviation from the segment's taste (logit scale); the part
            of a user's taste that only their clicks reveal.
        mobile_share: Share of users on mobile.
    """

    seed: int = 7
    n_segments: int = 4
    n_users: int = 5000
    items_per_category: int = 20
    segment_taste_scale: float = 1.3
    user_taste_noise: float = 0.6
    mobile_share: float = 0.6


@dataclass(frozen=True)
class Catalogue:
    """Items with category, price, unit cost, stock and within-category popularity."""

    item_id: np.ndarray
    category_id: np.ndarray
    price: np.ndarray
    cost: np.ndarray
    stock: np.ndarray
    popularity: np.ndarray
    """Probability of each item being the one shown when its category is chosen."""
    reference_price: np.ndarray
    """Median price per category (shape ``[n_categories]``)."""

    @property
    def n_items(self) -> int:
        return int(self.item_id.shape[0])

    def items_in(self, category: int) -> np.ndarray:
        return np.flatnonzero(self.category_id == category)


@dataclass(frozen=True)
class Users:
    """Users with an observable segment and device, and latent taste and price sensitivity."""

    segment: np.ndarray
    device: np.ndarray
    taste: np.ndarray
    """Latent click affinity per category, shape ``[n_users, n_categories]`` (logit scale)."""
    price_sensitivity: np.ndarray

    @property
    def n_users(self) -> int:
        return int(self.segment.shape[0])


@dataclass(frozen=True)
class World:
    config: WorldConfig
    catalogue: Catalogue
    users: Users
    segment_taste: np.ndarray


_CATEGORY_PRICE_LEVEL = np.array([180.0, 60.0, 45.0, 25.0, 70.0, 30.0])
_CATEGORY_MARGIN = np.array([0.18, 0.35, 0.55, 0.60, 0.40, 0.45])


def make_world(config: WorldConfig | None = None) -> World:
    """Draws the catalogue and the user population for ``config``."""
    cfg = config or WorldConfig()
    rng = np.random.default_rng(cfg.seed)
    n_cat = len(CATEGORIES)
    per = cfg.items_per_category

    category_id = np.repeat(np.arange(n_cat), per)
    price = np.round(_CATEGORY_PRICE_LEVEL[category_id] * rng.lognormal(0.0, 0.35, n_cat * per), 2)
    margin = np.clip(_CATEGORY_MARGIN[category_id] + rng.normal(0.0, 0.05, n_cat * per), 0.05, 0.8)
    cost = np.round(price * (1.0 - margin), 2)
    stock = rng.integers(20, 400, n_cat * per)
    raw_pop = rng.dirichlet(np.full(per, 0.8), n_cat).reshape(-1)
    reference_price = np.array([np.median(price[category_id == c]) for c in range(n_cat)])
    catalogue = Catalogue(
        item_id=np.arange(n_cat * per),
        category_id=category_id,
        price=price,
        cost=cost,
        stock=stock,
        popularity=raw_pop,
        reference_price=reference_price,
    )

    segment_taste = rng.normal(0.0, cfg.segment_taste_scale, (cfg.n_segments, n_cat))
    segment = rng.integers(0, cfg.n_segments, cfg.n_users)
    device = (rng.random(cfg.n_users) >= cfg.mobile_share).astype(np.int64)
    taste = segment_taste[segment] + rng.normal(0.0, cfg.user_taste_noise, (cfg.n_users, n_cat))
    price_sensitivity = rng.lognormal(0.0, 0.4, cfg.n_users)
    users = Users(segment=segment, device=device, taste=taste, price_sensitivity=price_sensitivity)
    return World(config=cfg, catalogue=catalogue, users=users, segment_taste=segment_taste)
