"""Security mechanisms as plain code: TLS contexts, principal mapping, SASL
mechanisms (server and client side, sans-IO), credentials and the
authorizer's ACL matching. No sockets and no broker state: the server
layer drives these per connection and per request.
"""
