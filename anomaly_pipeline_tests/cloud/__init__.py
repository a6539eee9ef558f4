"""Tests of the cloud implementations against fakes of their outermost edge (HTTP, SDK clients)."""
