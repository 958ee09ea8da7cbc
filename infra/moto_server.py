"""Starts moto's server with DynamoDB requests serialised.

Real DynamoDB applies each conditional write atomically per item. moto's server is threaded and its
DynamoDB backend takes no lock, so two concurrent conditional updates of one item can both pass their
condition. That would make every "exactly one winner" test (leases, versions, nonces, quotas) flaky
or wrong. Serialising DynamoDB requests restores the atomicity the real service has; other services
(SQS long polls in particular) stay concurrent.

Usage: python infra/moto_server.py -H 127.0.0.1 -p PORT
"""

import argparse
import threading

from werkzeug.serving import run_simple

from moto.moto_server.threaded_moto_server import MotoRequestHandler
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app


class SerialiseDynamoDB:
    def __init__(self, app):
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if target.startswith("DynamoDB_"):
            with self.lock:
                # Materialise the response inside the lock so the write is complete before release.
                body = list(self.app(environ, start_response))
            return body
        return self.app(environ, start_response)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=5000)
    args = parser.parse_args()
    app = DomainDispatcherApplication(create_backend_app)
    app.debug = True
    run_simple(args.host, args.port, SerialiseDynamoDB(app), threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
