"""Database models and the async session factory."""
