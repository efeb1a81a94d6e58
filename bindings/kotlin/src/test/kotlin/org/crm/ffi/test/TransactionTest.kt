package org.crm.ffi.test

import org.crm.ffi.CrmException
import org.crm.ffi.CrmHandle
import org.crm.ffi.FfiListRequest
import org.crm.ffi.FfiValue
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.assertThrows

/** Transactions across calls: commit, rollback, a failed call inside, `use {}` without commit. */
class TransactionTest {
    private fun name(n: String) = mapOf("name" to FfiValue.Text(n))

    @Test
    fun `commit writes everything, rollback and close without commit write nothing`() {
        CrmHandle.openInMemory("IT").use { h ->
            val admin = h.bootstrap("tx", "admin")
            val events0 = admin.pendingEvents(0L, 10_000).size

            h.transaction(admin).use { tx ->
                val acc = tx.create("account", name("ACME"))
                tx.update("account", acc.id, acc.version, mapOf("city" to FfiValue.Text("Milano")))
                // A failed call undoes only itself; the transaction goes on.
                val bad = assertThrows<CrmException.Validation> {
                    tx.createMany("contact", listOf(
                        mapOf("last_name" to FfiValue.Text("Good")),
                        mapOf("last_name" to FfiValue.Text("Bad"), "email" to FfiValue.Text("nope")),
                    ))
                }
                assertEquals("rows[1].email", bad.field)
                assertEquals(0L, tx.count("contact"))
                assertEquals(FfiValue.Text("Milano"), tx.get("account", acc.id).fields["city"])
                assertEquals(1, tx.list("account", FfiListRequest()).items.size)
                tx.commit()
                assertFalse(tx.isOpen())
                val ended = assertThrows<CrmException.InvalidTransition> { tx.count("account") }
                assertEquals("transaction_ended", ended.rule)
            }
            assertEquals(1L, admin.count("account"))
            assertEquals(events0 + 2, admin.pendingEvents(0L, 10_000).size)
            // A session opened from another handle is refused by this one.
            CrmHandle.openInMemory("IT").use { other ->
                val e = assertThrows<CrmException.Validation> { other.transaction(admin) }
                assertEquals("other_handle", e.rule)
            }

            val tx = admin.transaction()
            tx.create("account", name("Rolled back"))
            tx.rollback()
            assertThrows<CrmException.InvalidTransition> { tx.commit() }
            tx.close()

            // Closed without commit (an exception leaving `use`): rolled back.
            assertThrows<IllegalStateException> {
                admin.transaction().use { t ->
                    t.create("account", name("Never"))
                    throw IllegalStateException("boom")
                }
            }
            admin.create("contact", mapOf("last_name" to FfiValue.Text("After")))
            assertEquals(1L, admin.count("account"))
            assertTrue(admin.verifyAudit().ok)
        }
    }
}
