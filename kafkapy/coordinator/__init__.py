"""Group, offset and transaction coordinators."""

# Here so the broker can check for the topics without importing the coordinators.
OFFSETS_TOPIC = "__consumer_offsets"
TXN_TOPIC = "__transaction_state"
