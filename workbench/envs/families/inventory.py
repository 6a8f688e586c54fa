"""inventory — a stateful inventory and orders service exposed as tools (type ``api``).

What it tests: whether an agent can look things up before acting and change a service's state
exactly as asked: find an item's SKU by its name (``list_items``), then restock it, change its
price, place and ship an order, or cancel an existing order. The checker inspects the final
state with YAML rules (stock levels, prices, order status, and that no extra orders were made);
the final answer text is not judged. Every task starts from its own seeded catalogue.

Tools: ``list_items``, ``get_item {sku}``, ``restock {sku, qty}``, ``set_price {sku, price}``,
``create_order {sku, qty}``, ``ship_order {order_id}``, ``cancel_order {order_id}``,
``list_orders``. All run in the sandbox; the state lives with the run.

Run it::

    workbench scenarios run scenarios/inventory.yaml --split test --policy oracle
"""

from __future__ import annotations

import copy
import random
from collections.abc import Iterator
from typing import Any

from workbench.envs._registry import family, tool

_CATALOGUE = [
    ("mug-blue", "blue mug"), ("mug-red", "red mug"), ("pen-black", "black pen"), ("pen-green", "green pen"),
    ("notebook-a5", "A5 notebook"), ("notebook-a4", "A4 notebook"), ("lamp-desk", "desk lamp"),
    ("chair-office", "office chair"), ("cable-usb", "USB cable"), ("mouse-wireless", "wireless mouse"),
    ("bottle-steel", "steel bottle"), ("bag-tote", "tote bag"), ("stapler", "stapler"), ("tape-clear", "clear tape"),
]


class InventoryError(Exception):
    """A request the service refuses; the agent sees the message."""


def _item(ctx: Any, sku: str) -> dict[str, Any]:
    items = ctx.state.setdefault("items", {})
    if sku not in items:
        raise InventoryError(f"unknown sku {sku!r}; call list_items to see the catalogue")
    return items[sku]


def _order(ctx: Any, order_id: str) -> dict[str, Any]:
    orders = ctx.state.setdefault("orders", {})
    if order_id not in orders:
        raise InventoryError(f"unknown order {order_id!r}")
    return orders[order_id]


def _positive(qty: Any) -> int:
    if isinstance(qty, bool) or not isinstance(qty, (int, float)) or qty != int(qty) or qty < 1:
        raise InventoryError("qty must be a whole number of at least 1")
    return int(qty)


@tool("inventory.list_items")
def list_items(ctx: Any) -> list[dict[str, Any]]:
    """Tool: every item with its sku, name, stock and price."""
    return [{"sku": sku, **item} for sku, item in sorted(ctx.state.get("items", {}).items())]


@tool("inventory.get_item")
def get_item(ctx: Any, sku: str) -> dict[str, Any]:
    """Tool: one item by sku."""
    return {"sku": sku, **_item(ctx, sku)}


@tool("inventory.restock")
def restock(ctx: Any, sku: str, qty: int) -> dict[str, Any]:
    """Tool: add ``qty`` units to an item's stock."""
    item = _item(ctx, sku)
    item["stock"] += _positive(qty)
    return {"sku": sku, "stock": item["stock"]}


@tool("inventory.set_price")
def set_price(ctx: Any, sku: str, price: float) -> dict[str, Any]:
    """Tool: set an item's price."""
    item = _item(ctx, sku)
    if isinstance(price, bool) or not isinstance(price, (int, float)) or price <= 0:
        raise InventoryError("price must be a positive number")
    item["price"] = round(float(price), 2)
    return {"sku": sku, "price": item["price"]}


@tool("inventory.create_order")
def create_order(ctx: Any, sku: str, qty: int) -> dict[str, Any]:
    """Tool: reserve stock and create a pending order; returns the order id."""
    item = _item(ctx, sku)
    qty = _positive(qty)
    if item["stock"] < qty:
        raise InventoryError(f"only {item['stock']} {sku} in stock")
    item["stock"] -= qty
    number = ctx.state.get("next_order", 1001)
    ctx.state["next_order"] = number + 1
    order_id = f"ORD-{number}"
    ctx.state.setdefault("orders", {})[order_id] = {"sku": sku, "qty": qty, "status": "pending"}
    return {"order_id": order_id, "status": "pending"}


@tool("inventory.ship_order")
def ship_order(ctx: Any, order_id: str) -> dict[str, Any]:
    """Tool: ship a pending order."""
    order = _order(ctx, order_id)
    if order["status"] != "pending":
        raise InventoryError(f"order {order_id} is {order['status']}, only pending orders ship")
    order["status"] = "shipped"
    return {"order_id": order_id, "status": "shipped"}


@tool("inventory.cancel_order")
def cancel_order(ctx: Any, order_id: str) -> dict[str, Any]:
    """Tool: cancel a pending order and return its units to stock."""
    order = _order(ctx, order_id)
    if order["status"] != "pending":
        raise InventoryError(f"order {order_id} is {order['status']}, only pending orders can be cancelled")
    order["status"] = "cancelled"
    _item(ctx, order["sku"])["stock"] += order["qty"]
    return {"order_id": order_id, "status": "cancelled"}


@tool("inventory.list_orders")
def list_orders(ctx: Any) -> list[dict[str, Any]]:
    """Tool: every order with its id, sku, qty and status."""
    return [{"order_id": oid, **order} for oid, order in sorted(ctx.state.get("orders", {}).items())]


def _schema(props: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": props, "required": list(props), "additionalProperties": False}


_SKU = {"type": "string", "description": "Item sku, e.g. mug-blue"}
_QTY = {"type": "integer", "minimum": 1}
_ORDER = {"type": "string", "description": "Order id, e.g. ORD-1001"}

TOOLS = [
    {"name": "list_items", "description": "List every item: sku, name, stock, price.", "parameters": _schema({}),
     "handler": "inventory.list_items"},
    {"name": "get_item", "description": "Get one item by sku.", "parameters": _schema({"sku": _SKU}),
     "handler": "inventory.get_item"},
    {"name": "restock", "description": "Add units to an item's stock.", "parameters": _schema({"sku": _SKU, "qty": _QTY}),
     "handler": "inventory.restock"},
    {"name": "set_price", "description": "Set an item's price.",
     "parameters": _schema({"sku": _SKU, "price": {"type": "number"}}), "handler": "inventory.set_price"},
    {"name": "create_order", "description": "Create a pending order (reserves stock).",
     "parameters": _schema({"sku": _SKU, "qty": _QTY}), "handler": "inventory.create_order"},
    {"name": "ship_order", "description": "Ship a pending order.", "parameters": _schema({"order_id": _ORDER}),
     "handler": "inventory.ship_order"},
    {"name": "cancel_order", "description": "Cancel a pending order; its units go back to stock.",
     "parameters": _schema({"order_id": _ORDER}), "handler": "inventory.cancel_order"},
    {"name": "list_orders", "description": "List every order.", "parameters": _schema({}),
     "handler": "inventory.list_orders"},
]


def _initial_state(rng: random.Random) -> dict[str, Any]:
    chosen = rng.sample(_CATALOGUE, rng.randint(4, 6))
    items = {
        sku: {"name": name, "stock": rng.randint(3, 30), "price": round(rng.randint(200, 9000) / 100, 2)}
        for sku, name in chosen
    }
    orders: dict[str, Any] = {}
    number = 1001
    for _ in range(rng.randint(1, 3)):
        sku = rng.choice(list(items))
        orders[f"ORD-{number}"] = {"sku": sku, "qty": rng.randint(1, 3), "status": rng.choice(["pending", "shipped"])}
        number += 1
    return {"items": items, "orders": orders, "next_order": number}


def _order_count(state: dict[str, Any], extra: int) -> dict[str, Any]:
    return {"json_path": {"path": "$.state.orders.*", "count": len(state["orders"]) + extra}}


def _task(rng: random.Random) -> tuple[str, dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
    """(instructions, checker, oracle actions, initial state) for one random task."""
    state = _initial_state(rng)
    items = state["items"]
    sku = rng.choice(sorted(items))
    item = items[sku]
    name = item["name"]
    look = {"tool": "list_items", "arguments": {}}
    kind = rng.randrange(4)
    pending = sorted(oid for oid, o in state["orders"].items() if o["status"] == "pending")
    if kind == 3 and not pending:
        kind = rng.randrange(3)
    if kind == 0:
        qty = rng.randint(2, 20)
        text = f"Restock {qty} units of the {name}."
        checker = {"all": [
            {"state": {"path": f"items.{sku}.stock", "op": "==", "value": item["stock"] + qty}},
            _order_count(state, 0),
        ]}
        actions = [look, {"tool": "restock", "arguments": {"sku": sku, "qty": qty}}]
    elif kind == 1:
        price = round(rng.randint(200, 9000) / 100, 2)
        while price == item["price"]:
            price = round(rng.randint(200, 9000) / 100, 2)
        text = f"Change the price of the {name} to {price:.2f}."
        checker = {"all": [
            {"state": {"path": f"items.{sku}.price", "op": "==", "value": price}},
            {"state": {"path": f"items.{sku}.stock", "op": "==", "value": item["stock"]}},
        ]}
        actions = [look, {"tool": "set_price", "arguments": {"sku": sku, "price": price}}]
    elif kind == 2:
        qty = rng.randint(1, min(5, item["stock"]))
        text = f"A customer wants {qty} x {name}. Create an order for it and ship it."
        match = f"$.state.orders[?(@.sku == '{sku}' && @.qty == {qty} && @.status == 'shipped')]"
        checker = {"all": [
            {"json_path": {"path": match, "count": sum(
                1 for o in state["orders"].values() if o == {"sku": sku, "qty": qty, "status": "shipped"}) + 1}},
            {"state": {"path": f"items.{sku}.stock", "op": "==", "value": item["stock"] - qty}},
            _order_count(state, 1),
        ]}
        new_id = f"ORD-{state['next_order']}"
        actions = [
            look,
            {"tool": "create_order", "arguments": {"sku": sku, "qty": qty}},
            {"tool": "ship_order", "arguments": {"order_id": new_id}},
        ]
    else:
        order_id = rng.choice(pending)
        order = state["orders"][order_id]
        text = f"Cancel order {order_id}; its units must go back into stock."
        checker = {"all": [
            {"state": {"path": f"orders.{order_id}.status", "op": "==", "value": "cancelled"}},
            {"state": {"path": f"items.{order['sku']}.stock", "op": "==",
                       "value": items[order["sku"]]["stock"] + order["qty"]}},
            _order_count(state, 0),
        ]}
        actions = [{"tool": "list_orders", "arguments": {}}, {"tool": "cancel_order", "arguments": {"order_id": order_id}}]
    return text, checker, actions + [{"answer": "done"}], state


INSTRUCTIONS = (
    "You operate a shop's inventory service through its tools. {task} "
    "Look up SKUs and order ids with the tools; do not change anything else. "
    "When you are finished, answer with a short summary."
)


@family("inventory", type="api", counts={"train": 200, "test": 60})
def generate(split: str, rng: random.Random, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Candidate inventory tasks in a seeded order (the family keeps those of ``split``)."""
    while True:
        text, checker, actions, state = _task(rng)
        yield {
            "name": "inventory",
            "type": "api",
            "description": "Change an inventory service's state exactly as asked.",
            "instructions": INSTRUCTIONS.format(task=text),
            "initial_state": copy.deepcopy(state),
            "tools": TOOLS,
            "checker": checker,
            "limits": {"max_steps": 10, "max_tool_calls": 8, "step_timeout_s": 5, "run_timeout_s": 120},
            "oracle": {"actions": actions},
            "tags": ["inventory", "stateful"],
            # the split key is the instruction text: no test instruction appears in train
            "metadata": {"task_key": text},
        }
