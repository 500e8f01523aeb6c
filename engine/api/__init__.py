"""The Docker Engine API front end: a unix socket that the docker CLI, docker-py and compose drive."""
