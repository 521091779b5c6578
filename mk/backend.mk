# backend area (engineer D): the text-to-image service and cmd/tdxl-backend.
FUZZ_TARGETS += ./backend:FuzzDecodeRequest
