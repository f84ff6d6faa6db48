"""The registry database: collections, batches, model and index versions, aliases, drift reports,
alerts, training runs and locks. Use :class:`storage.registry.store.RegistryStore`."""
