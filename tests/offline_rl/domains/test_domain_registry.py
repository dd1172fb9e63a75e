"""The registry of domains: what it finds, in which order, and the errors that name the cause."""

from __future__ import annotations

import itertools
import textwrap

import pytest

from offline_rl.domains import DOMAINS_ENV, domain_names, get_domain, landing_schemas

_names = itertools.count()


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """``plugin(body)``: a fresh module with ``body`` on ``sys.path``, named in the variable."""

    def make(body: str) -> str:
        name = f"registry_plugin_{next(_names)}"
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(body))
        monkeypatch.syspath_prepend(str(tmp_path))
        monkeypatch.setenv(DOMAINS_ENV, name)
        return name

    return make


def test_the_package_modules_in_their_order():
    assert domain_names() == ("recommendation", "cart", "inventory", "ads", "pricing")
    assert list(landing_schemas()) == ["clickstream", "cart", "inventory_snapshots",
                                       "inventory_orders", "ads", "pricing_changes",
                                       "pricing_sales"]
    with pytest.raises(ValueError, match="unknown domain 'nope'; choose one of: "
                                         "recommendation, cart"):
        get_domain("nope")


def test_a_module_named_in_the_variable_joins_by_its_order(plugin):
    plugin("""
        import dataclasses
        from offline_rl.domains.cart import DOMAIN as CART
        DOMAIN = dataclasses.replace(CART, name="early", order=0, landing=())
    """)
    assert domain_names()[:2] == ("early", "recommendation")
    assert get_domain("early").sources == ("cart",)


def test_a_module_that_cannot_be_imported_is_named(monkeypatch):
    monkeypatch.setenv(DOMAINS_ENV, "no_such_module_for_the_registry")
    with pytest.raises(ValueError, match=r"\$OFFLINE_RL_DOMAINS names module "
                                         r"'no_such_module_for_the_registry'"):
        domain_names()


def test_a_module_without_a_domain_is_refused(plugin):
    name = plugin("X = 1\n")
    with pytest.raises(TypeError, match=f"{name}.DOMAIN must be an offline_rl.domains.base"):
        domain_names()


def test_two_modules_may_not_define_one_domain(plugin):
    name = plugin("""
        import dataclasses
        from offline_rl.domains.cart import DOMAIN as CART
        DOMAIN = dataclasses.replace(CART, landing=())
    """)
    with pytest.raises(ValueError, match=f"two modules define the domain 'cart': "
                                         f"offline_rl.domains.cart and {name}"):
        domain_names()


def test_a_dataset_is_declared_once_and_read_only_where_declared(plugin):
    plugin("""
        import dataclasses
        from offline_rl.domains.cart import DOMAIN as CART
        DOMAIN = dataclasses.replace(CART, name="cart_copy")
    """)
    with pytest.raises(ValueError, match="landing dataset 'cart' is declared by two domains: "
                                         "cart and cart_copy"):
        domain_names()
    plugin("""
        import dataclasses
        from offline_rl.domains.cart import DOMAIN as CART
        DOMAIN = dataclasses.replace(CART, name="reader", landing=(), sources=("nowhere",))
    """)
    with pytest.raises(ValueError, match="domain 'reader' reads landing dataset\\(s\\) nowhere "
                                         "that no domain declares"):
        domain_names()


def test_a_scenario_configures_a_domain_with_its_own_type():
    from offline_rl.simulator.cart import CartConfig
    from offline_rl.simulator.pricing import PricingConfig
    from offline_rl.simulator.scenarios import Scenario

    scenario = Scenario("t", "", domains={"cart": PricingConfig()})
    assert scenario.config_for("ads", CartConfig()) == CartConfig()
    with pytest.raises(TypeError, match="scenario 't' configures cart with a PricingConfig, "
                                        "not a CartConfig"):
        scenario.config_for("cart", CartConfig())


def test_logs_of_an_undeclared_dataset_are_refused(tmp_path):
    import datetime as dt

    from offline_rl.simulator import cart
    from offline_rl.simulator.logs import write_logs

    with pytest.raises(ValueError, match="the cart simulation writes a landing dataset 'cart' "
                                         "that no domain declares"):
        write_logs(tmp_path, {"cart": cart.SIMULATION}, {}, days=1, start=dt.date(2026, 10, 1),
                   seed=0, events_per_day=200, scenario="default", serve=None)


def test_every_domain_declares_a_progress_feature_among_its_features():
    import dataclasses

    from offline_rl.domains import all_domains, get_domain

    for domain in all_domains():
        assert domain.progress_feature in domain.feature_names, domain.name
    with pytest.raises(ValueError, match="cart: progress feature 'page' is not a state feature"):
        dataclasses.replace(get_domain("cart"), progress_feature="page")
