"""The HTTP headers that carry a caller's session (implementations.interface.Session) to the API
and its retries back: the API (implementations/api.py) and the Locust transport
(workloads/transports.py) both name them from here."""

ISOLATION_HEADER = "X-Isolation"  # the transaction isolation of the request's calls
REPORT_HEADER = "X-Report"  # the report (a held transaction) the request's queries run in
RETRIES_HEADER = "X-Retries"  # on the response: how many times its command was retried
ROLE_HEADER = "X-Role"  # names the caller's commands in their sessions' application_name
