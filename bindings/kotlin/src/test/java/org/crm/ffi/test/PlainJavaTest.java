package org.crm.ffi.test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.Map;

import org.crm.ffi.CrmException;
import org.crm.ffi.CrmHandle;
import org.crm.ffi.FfiListRequest;
import org.crm.ffi.FfiRecord;
import org.crm.ffi.FfiValue;
import org.crm.ffi.Session;
import org.junit.jupiter.api.Test;

/** The same API from plain Java, as most ERPs would call it. */
class PlainJavaTest {
    @Test
    void firstCallsFromJava() throws Exception {
        try (CrmHandle handle = CrmHandle.Companion.openInMemory("IT")) {
            Session admin = handle.bootstrap("java", "admin", null);
            FfiRecord acc = admin.create("account",
                    Map.of("name", new FfiValue.Text("ACME Srl"), "phone", new FfiValue.Text("02 1234 5678")),
                    null);
            assertEquals(1L, acc.getVersion());
            assertEquals(new FfiValue.Text("+390212345678"), acc.getFields().get("phone"));

            FfiRecord updated = admin.update("account", acc.getId(), acc.getVersion(),
                    Map.of("city", new FfiValue.Text("Milano")));
            assertEquals(2L, updated.getVersion());

            CrmException.Conflict conflict = assertThrows(CrmException.Conflict.class,
                    () -> admin.update("account", acc.getId(), 1L, Map.of("city", new FfiValue.Text("Roma"))));
            assertEquals("stale_version", conflict.getRule());

            CrmException.NotFound missing = assertThrows(CrmException.NotFound.class,
                    () -> admin.get("account", "0190f0e4-0000-7000-8000-000000000000"));
            assertEquals("account", missing.getEntity());

            FfiListRequest req = new FfiListRequest(null, "name", false, 10, null, false);
            assertEquals(1, admin.list("account", req).getItems().size());
            assertEquals(1, admin.findByPhone("account", "+39 02 12345678").size());

            // A process call: lifecycle moves take the version read, like updates.
            FfiRecord lead = admin.create("lead",
                    Map.of("last_name", new FfiValue.Text("Rossi"), "channel", new FfiValue.Text("phone")), null);
            FfiRecord contacted = admin.transitionLead(lead.getId(), lead.getVersion(), "contacted", null);
            assertEquals(new FfiValue.Text("contacted"), contacted.getFields().get("status"));
            CrmException.InvalidTransition noReason = assertThrows(CrmException.InvalidTransition.class,
                    () -> admin.disqualifyLead(contacted.getId(), contacted.getVersion(), ""));
            assertEquals("reason_required", noReason.getRule());
            assertEquals(1, admin.stageHistory("lead", lead.getId()).size());
        }
    }
}
