-- SPDX-License-Identifier: MIT
-- Pool handler for the tests: fails while loading, as a module with a
-- bug or a missing dependency does.
error("broken on purpose")
