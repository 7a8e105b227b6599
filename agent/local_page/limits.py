"""Every bound of the local page, in one place: connections, request heads, login, sessions, log.

Each is tested at the bound (tests/test_local_page.py, tests/test_local_page_attacks.py);
docs/local-page.md explains the numbers.
"""

# -- connections (agent/local_page/intake.py, server.py) --------------------------------
MAX_CONNECTIONS = 32  # open at once; fewer when the process may open few files (connection_cap)
MAX_CONNECTIONS_PER_SOURCE = 8  # from one address (a browser opens up to 6 to one host)
FD_RESERVE = 32  # file descriptors the page leaves to the rest of the agent (uplink, outbox, journal)
MIN_CONNECTIONS = 4  # if the file limit leaves fewer, the page does not start
REQUEST_TIMEOUT_S = 10.0  # from taking a connection: request line, headers and body all in, or it is closed
ANSWER_TIMEOUT_S = 10.0  # the client must take the whole answer within this time
ACCEPT_RETRY_S = 0.5  # out of file descriptors: wait before taking connections again
# No keep-alive: microdot answers with HTTP/1.0 and the page closes every connection after
# its answer, so a connection is idle only while its request is not in (REQUEST_TIMEOUT_S).

# -- on a board (board.py): what memory and one core ask for ---------------------------
BOARD_MAX_CONNECTIONS = 6  # a browser opens up to 6; each may hold a request head of MAX_HEAD_BYTES
BOARD_READ_BYTES = 512  # a request is read in pieces this large (MicroPython's readline has no bound)
EXPORT_PIECE_BYTES = 1024  # the export file is sent in pieces about this large (a board's heap fragments)
BOARD_HASH_CHUNK = 500  # PBKDF2 rounds between two turns of the board's other tasks (~2 ms on the unix port)

# -- request heads (intake.parse_head) ----------------------------------------------------
MAX_REQUEST_LINE = 1024  # "GET /lang/de?next=/consumables HTTP/1.1" is 40 bytes
MAX_HEADER_LINE = 4096  # one header line (a cookie line of other pages on the same host fits)
MAX_HEADERS = 32  # header lines (a browser sends about 20)
MAX_HEAD_BYTES = 8192  # request line, headers and the blank line together
MAX_BODY_BYTES = 4096  # a request body (all forms of the page are small)
MAX_NAME_LEN = 253  # a local name the page answers to (DNS limit)

# -- login (access.LoginThrottle, access.LoginNonces) -----------------------------------
MAX_CODE_LEN = 64  # a typed setup code longer than this is wrong without hashing it
FREE_FAILURES = 5  # wrong codes in a row from one address before its delay starts
FIRST_DELAY_S = 1.0  # then 1, 2, 4, ... seconds between attempts from that address
MAX_DELAY_S = 120.0  # never longer for one address
FORGET_FAILURES_S = 3600  # an address quiet this long starts again from zero
MAX_TRACKED_CLIENTS = 256  # addresses remembered with their failures; the longest quiet is forgotten first
WINDOW_S = 30.0  # the ceiling for all addresses together counts code checks in windows this long
WINDOW_CHECKS = 288  # code checks per window, all addresses together (CPU, and guesses from many addresses)
REPEAT_CHECKS = 32  # of which at most this many are second or later checks of an address in the window,
# so WINDOW_CHECKS - REPEAT_CHECKS = 256 first checks per window are kept for addresses not yet heard from
GROUP_FIRSTS = 4  # first checks per window for the addresses of one IPv6 /64 together
NONCE_MAX_AGE_S = 15 * 60  # a login form is good this long
MAX_NONCE_LEN = 128  # a nonce longer than this is not one the page made

# -- sessions (access.SessionTable) -----------------------------------------------------
MAX_SESSIONS = 8  # signed-in browsers at once; a new login pushes out the least recently used
SESSION_IDLE_S = 15 * 60  # a session unused this long ends
SESSION_MAX_S = 8 * 3600  # and none lives longer than this
TOKEN_BYTES = 32  # session ids, form tokens, nonce randomness: 256 random bits

# -- the page's own log (server.py, through agent/core/ratelimit.ThrottledReport) ------
LOG_PER_S = 0.1  # lines a second on average: what a hostile client can make the page write
LOG_BURST = 10  # lines at once
LOG_LINE_MAX = 300  # characters per line: a burst of 3 kB, then 30 bytes a second (2.6 MB a day) at most
