"""A database engine for processes that must not have a database.

``ENGINE: "arcana.db.refuse"``: every query, transaction or connection attempt
raises :class:`~arcana.db.refuse.base.HiddenDatabaseUse`. The settings select
it for the layered deployment's controller and service tiers, which reach the
data through the repository tier, so ORM use that slipped into them fails
loudly instead of quietly needing database credentials.
"""
