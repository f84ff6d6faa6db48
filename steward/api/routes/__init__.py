"""The service's endpoints, one router per concern; :func:`steward.api.app.create_app` mounts them."""
