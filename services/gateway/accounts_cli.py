"""Account chores run on the server itself, where the data volume is (shared/accounts.py).

    python -m services.gateway.accounts_cli reset-password <username>   # a forgotten password: prints a new one
    python -m services.gateway.accounts_cli users                       # who has an account
    python -m services.gateway.accounts_cli setup-token                 # the setup token, while there is no owner

In compose: ``docker compose exec gateway python -m services.gateway.accounts_cli reset-password <username>``. Whoever
can run this can read the data volume anyway; nothing here goes over the network.
"""

from __future__ import annotations

import argparse
import sys

from shared import accounts, catalog
from shared.catalog import accounts as account_rows
from shared.errors import NotFound
from shared.settings import Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.gateway.accounts_cli", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    reset = commands.add_parser("reset-password", help="set a new random password and sign the user out everywhere")
    reset.add_argument("username")
    commands.add_parser("users", help="list the accounts")
    commands.add_parser("setup-token", help="print the setup token while the owner account does not exist")
    args = parser.parse_args(argv)

    settings = Settings()
    conn = catalog.connect(settings.catalog_path)
    try:
        if args.command == "reset-password":
            try:
                password = accounts.reset_password(conn, args.username)
            except NotFound as exc:
                print(exc, file=sys.stderr)
                return 1
            print(f"New password for {args.username}: {password}\n"
                  "Sign in with it, then change it (Account → Change password). Every session of this user "
                  "was signed out.")
        elif args.command == "users":
            for user in account_rows.list_users(conn):
                print(f"{user['username']}\t{user['role']}")
        else:
            token = accounts.announce_setup(conn, settings)
            if token is None:
                print("The owner account exists already: sign in, or reset its password with reset-password.",
                      file=sys.stderr)
                return 1
            print(token)
    finally:
        conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
