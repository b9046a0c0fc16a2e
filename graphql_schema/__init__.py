"""The GraphQL API: Strawberry types, queries and subscriptions over small context Protocols."""
