"""gRPC controllers for users (``arcana.v1.UserService``)."""
