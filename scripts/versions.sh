# Shared by setup.sh and lock.sh: the extras the set-up installs and the installer's own version.
EXTRAS=(tf dev lite serving demo beam docs)
UV_VERSION=0.13.9
