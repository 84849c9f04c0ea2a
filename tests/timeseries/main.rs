//! Time-series collections on real servers, in one test binary: migrated
//! live from 5.0 and 6.0 sources (`live`), listed by the check's inventory
//! (`inventory`) and verified bucket by bucket (`verify`).

use mongoferry_test_support as support;

mod inventory;
mod live;
mod verify;
