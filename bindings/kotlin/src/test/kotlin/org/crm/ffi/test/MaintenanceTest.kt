package org.crm.ffi.test

import org.crm.ffi.CrmException
import org.crm.ffi.CrmHandle
import org.crm.ffi.FfiListRequest
import org.crm.ffi.FfiValue
import org.crm.ffi.Session
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.assertThrows
import org.junit.jupiter.api.io.TempDir
import java.nio.file.Path

/** Filter language, segments, online backup, integrity check, tenant export and import. */
class MaintenanceTest {
    @TempDir
    lateinit var dir: Path

    @Test
    fun `filter language, segments, backup, integrity check, tenant export and import`() {
        val copy = dir.resolve("copy.sqlite").toString()
        val jsonl = dir.resolve("ops.jsonl").toString()
        val adminId: String
        var exported = 0L
        CrmHandle.open(dir.resolve("crm.sqlite").toString(), "IT").use { h ->
            val admin = h.bootstrap("ops", "admin")
            adminId = admin.userId()
            admin.createMany("account", listOf("Milano", "Milano", "Roma").mapIndexed { i, city ->
                mapOf("name" to FfiValue.Text("Acc $i"), "city" to FfiValue.Text(city))
            })
            val json = admin.parseFilter("account", """city = "Milano"""")
            assertEquals(2L, admin.count("account", json))
            assertEquals(2, admin.list("account", FfiListRequest(filterJson = json)).items.size)
            val bad = assertThrows<CrmException.InvalidQuery> { admin.parseFilter("account", "no_such_field = 1") }
            assertEquals("no_such_field", bad.field)

            val seg = admin.create("segment", mapOf(
                "name" to FfiValue.Text("Milanese"), "entity" to FfiValue.Text("account"),
                "definition" to FfiValue.Text("""city = "Milano""""),
            ))
            assertEquals(2L, admin.segmentCount(seg.id))
            val diff = admin.refreshSegment(seg.id)
            assertEquals(2L, diff.memberCount)
            assertEquals(2, diff.entered.size)
            assertTrue(diff.left.isEmpty())

            // Host operations are on the handle: no acting user.
            assertTrue(h.integrityCheck().isEmpty())
            h.backup(copy)

            // The tenant as JSON Lines; an existing file is never overwritten.
            val sent = h.exportTenant("ops", jsonl)
            assertTrue(sent.records >= 5 && sent.audit > 0, sent.toString())
            assertEquals("io", assertThrows<CrmException.Storage> { h.exportTenant("ops", jsonl) }.rule)
            assertThrows<CrmException.Validation> { h.exportTenant("not a tenant!", dir.resolve("x.jsonl").toString()) }
            exported = sent.records
        }
        // Imported into another database, with its users, history and audit chain.
        CrmHandle.openInMemory("IT").use { h ->
            assertEquals(exported, h.importTenant(jsonl).records)
            val admin = h.session("ops", adminId)
            assertEquals(3L, admin.count("account"))
            assertTrue(admin.verifyAudit().ok)
            assertThrows<CrmException> { h.importTenant(jsonl) } // the tenant is no longer empty
        }
        CrmHandle.open(copy).use { h ->
            val admin = h.session("ops", adminId)
            assertEquals(3L, admin.count("account"))
            assertTrue(h.integrityCheck().isEmpty())
            assertTrue(admin.verifyAudit().ok)
        }
    }

    @Test
    fun `host operations are not on the tenant session`() {
        // A tenant administrator's session cannot copy the database or another tenant: backup,
        // integrity check and tenant export/import exist only on the handle.
        val host = setOf("backup", "integrityCheck", "exportTenant", "importTenant")
        val onSession = Session::class.java.methods.map { it.name }.toSet()
        assertEquals(emptySet<String>(), host intersect onSession)
        assertTrue(host.all { name -> CrmHandle::class.java.methods.any { it.name == name } })

        // The handle's backup takes every tenant, whoever administers them.
        val copy = dir.resolve("both.sqlite").toString()
        val ids = mutableMapOf<String, String>()
        CrmHandle.open(dir.resolve("two.sqlite").toString(), "IT").use { h ->
            for (t in listOf("north", "south")) {
                val admin = h.bootstrap(t, "admin")
                ids[t] = admin.userId()
                admin.create("account", mapOf("name" to FfiValue.Text("$t Srl")))
            }
            h.backup(copy)
            assertThrows<CrmException> { h.backup(copy) } // an existing file is never overwritten
        }
        CrmHandle.open(copy).use { h ->
            for ((t, id) in ids) assertEquals(1L, h.session(t, id).count("account"))
        }
    }
}
