-- t/010-buf.t: the buffer chain's C unit tests (t/c/test_buf.c). The C
-- program prints the TAP itself; this wrapper runs it and passes its status.
require("lib.ctest").run("buf")
