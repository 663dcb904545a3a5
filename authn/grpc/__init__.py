"""gRPC controllers for authentication (``arcana.v1.AuthService``)."""
