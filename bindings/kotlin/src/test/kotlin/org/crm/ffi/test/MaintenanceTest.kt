package org.crm.ffi.test

import org.crm.ffi.CrmException
import org.crm.ffi.CrmHandle
import org.crm.ffi.FfiListRequest
import org.crm.ffi.FfiValue
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.assertThrows
import org.junit.jupiter.api.io.TempDir
import java.nio.file.Path

/** Filter language, segments, online backup and the integrity check. */
class MaintenanceTest {
    @TempDir
    lateinit var dir: Path

    @Test
    fun `filter language, segments, backup and integrity check`() {
        val copy = dir.resolve("copy.sqlite").toString()
        val adminId: String
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

            assertTrue(admin.integrityCheck().isEmpty())
            admin.backup(copy)
        }
        CrmHandle.open(copy).use { h ->
            val admin = h.session("ops", adminId)
            assertEquals(3L, admin.count("account"))
            assertTrue(admin.integrityCheck().isEmpty())
            assertTrue(admin.verifyAudit().ok)
        }
    }
}
