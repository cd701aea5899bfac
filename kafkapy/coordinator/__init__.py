"""Group, offset and transaction coordinators."""

TXN_TOPIC = "__transaction_state"  # here so the broker can check for it without importing the coordinator
